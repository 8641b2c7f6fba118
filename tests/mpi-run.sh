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
# Under AddressSanitizer, no leak check: MPI keeps memory until exit in
# plugins it has unloaded by then, which no suppression can name (the
# suites that run without MPI check mproc's own leaks).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# Memory the tests share with their workers on every rank (testutil.h,
# test_shared): a file all ranks of this job on this machine map.
export MPROC_TEST_SHM="/dev/shm/mproc-test-mpi-$$"
rm -f "$MPROC_TEST_SHM"
# Removed however the job ends (a timeout signals the process group).
trap 'rm -f "$MPROC_TEST_SHM"' EXIT
trap 'exit 143' TERM INT
# Open MPI refuses more ranks than cores without --oversubscribe; MPICH's
# launcher (Hydra) allows them and knows no such flag.
case "$("$mpirun" --version 2>&1)" in
*HYDRA*) over= ;;
*) over=--oversubscribe ;;
esac
"$mpirun" $over -np 3 "$@"
status=$?
rm -f "$MPROC_TEST_SHM"
exit $status
