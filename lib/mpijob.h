/*
 * mpijob.h - the MPI job: its start in mproc_init (be_mpi.c), and the node
 * agent every rank but 0 becomes (mpi_agent.c). Only in a build with MPI
 * (config.h: HAVE_MPI).
 */
#ifndef MPROC_MPIJOB_H
#define MPROC_MPIJOB_H

#include <mpi.h>

/*
 * When MPROC_BACKEND=mpi: initialize MPI, split the job's communicator
 * from MPI_COMM_WORLD and learn every rank's CPUs. On a rank other than 0
 * it does not return: the rank becomes a node agent. On rank 0, 0 (MPI is
 * finalized at exit, after every agent was told to end), or -ENOTSUP when
 * MPI cannot be used (no thread support, ranks of another byte order).
 * 0 at once when the variable does not ask for MPI.
 */
int mproc__mpi_start(void);

/* The ranks of the job when mproc__mpi_start made this rank 0; 0 when
 * MPI was not started. */
int mproc__mpi_world(void);

/* Serve rank 0 as a node agent until it says QUIT or is gone; then end
 * every worker, finalize MPI and _exit(0). */
_Noreturn void mproc__mpi_agent(MPI_Comm comm);

#endif
