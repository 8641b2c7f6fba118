/*
 * init.c - mproc_init: what a program calls first thing in main. Workers'
 * titles (child.c), and, when MPROC_BACKEND=mpi in a build with MPI, the
 * MPI job (be_mpi.c): there every rank but 0 becomes a node agent here
 * and never returns.
 */
#include "config.h"
#include "child.h"
#if HAVE_MPI
#include "mpijob.h"
#endif

void mproc_init(int argc, char *argv[], char *envp[])
{
	mproc__child_title_init(argc, argv, envp);
#if HAVE_MPI
	/* A failure leaves MPI unused: pools of the MPI backend then answer
	 * -ENOTSUP at open. */
	(void)mproc__mpi_start();
#endif
}
