#!/bin/sh
# Run a test program as a 3-rank MPI job on the MPI backend: rank 0 runs the
# Check suite (without forking, CK_FORK=no: a forked copy of rank 0 cannot
# use MPI), ranks 1 and 2 are node agents. Usage: mpi-run.sh MPIRUN PROG...
mpirun="$1"
shift
export MPROC_BACKEND=mpi CK_FORK=no
# Open MPI refuses root without these; a machine with fewer cores than
# ranks needs --oversubscribe.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Shared memory and loopback TCP only: no network interface is probed.
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo
# Under LeakSanitizer, what MPI itself keeps until exit is not reported.
export LSAN_OPTIONS="suppressions=$(dirname "$0")/lsan-mpi.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
exec "$mpirun" --oversubscribe -np 3 "$@"
