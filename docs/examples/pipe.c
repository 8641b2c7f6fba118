/*
 * pipe.c - "Exchanging objects between processes: Pipes", the Python
 * documentation's example, in C with mproc.
 *
 * Python:
 *     from multiprocessing import Process, Pipe
 *
 *     def f(conn):
 *         conn.send([42, None, 'hello'])
 *         conn.close()
 *
 *     if __name__ == '__main__':
 *         parent_conn, child_conn = Pipe()
 *         p = Process(target=f, args=(child_conn,))
 *         p.start()
 *         print(parent_conn.recv())   # prints "[42, None, 'hello']"
 *         p.join()
 *
 * Run: build/docs/examples/pipe
 */
#include <stdio.h>

#include <mproc.h>

static struct mproc_conn *parent_conn, *child_conn;

/* The child: send [42, None, 'hello'] and close its end. */
static int f(const struct mproc_value *arg, struct mproc_writer *ret)
{
	struct mproc_writer *w;
	const void *data;
	size_t len;
	int rc;

	(void)arg, (void)ret;
	if ((rc = mproc_writer_new(&w, 0)) < 0)
		return rc;
	mproc_write_list_begin(w);
	mproc_write_int(w, 42);
	mproc_write_none(w);
	mproc_write_cstr(w, "hello");
	mproc_write_list_end(w);
	rc = mproc_writer_finish(w, &data, &len);
	if (rc == 0)
		rc = mproc_conn_send(child_conn, data, len);
	mproc_conn_close(child_conn);
	mproc_writer_free(w);
	return rc;
}

int main(int argc, char *argv[], char *envp[])
{
	struct mproc_process *p;
	const struct mproc_value *v;
	char text[256];
	int rc;

	mproc_init(argc, argv, envp);
	if ((rc = mproc_pipe(&parent_conn, &child_conn, true)) < 0 ||
	    (rc = mproc_process_start(&p, f, NULL, 0, NULL)) < 0) {
		fprintf(stderr, "pipe: %s\n", mproc_strerror(rc));
		return 1;
	}
	/* The child has its own copy of this end: close ours, so that the
	 * child's end of file is ours too. */
	mproc_conn_close(child_conn);
	rc = mproc_conn_recv(parent_conn, &v);
	if (rc == 0)
		rc = mproc_value_repr(v, text, sizeof text, NULL);
	if (rc == 0)
		printf("%s\n", text);    /* prints "[42, None, 'hello']" */
	else
		fprintf(stderr, "pipe: %s\n", mproc_strerror(rc));
	mproc_process_join(p, -1);
	mproc_process_free(p);
	mproc_conn_free(parent_conn);
	mproc_conn_free(child_conn);
	return rc == 0 ? 0 : 1;
}
