/*
 * queue.c - "Exchanging objects between processes: Queues", the Python
 * documentation's example, in C with mproc.
 *
 * Python:
 *     from multiprocessing import Process, Queue
 *
 *     def f(q):
 *         q.put([42, None, 'hello'])
 *
 *     if __name__ == '__main__':
 *         q = Queue()
 *         p = Process(target=f, args=(q,))
 *         p.start()
 *         print(q.get())    # prints "[42, None, 'hello']"
 *         p.join()
 *
 * The queue is made before the process starts, and the child uses the
 * handle it inherited (Python pickles the queue into `args` instead).
 *
 * Run: build/docs/examples/queue
 */
#include <stdio.h>

#include <mproc.h>

static struct mproc_queue *q;

/* The child: put [42, None, 'hello']. */
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
		rc = mproc_queue_put(q, data, len, true, -1);
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
	if ((rc = mproc_queue_new(&q, 0)) < 0 ||
	    (rc = mproc_process_start(&p, f, NULL, 0, NULL)) < 0) {
		fprintf(stderr, "queue: %s\n", mproc_strerror(rc));
		return 1;
	}
	rc = mproc_queue_get(q, true, -1, &v);
	if (rc == 0)
		rc = mproc_value_repr(v, text, sizeof text, NULL);
	if (rc == 0)
		printf("%s\n", text);    /* prints "[42, None, 'hello']" */
	else
		fprintf(stderr, "queue: %s\n", mproc_strerror(rc));
	mproc_process_join(p, -1);
	mproc_process_free(p);
	mproc_queue_free(q);
	return rc == 0 ? 0 : 1;
}
