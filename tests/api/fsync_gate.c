/* fsync_gate.c -- an LD_PRELOAD shim for tests: while the file named by
 * $PD_FSYNC_GATE exists, fsync() and fdatasync() wait (at most 10 s) before
 * doing their work. A test holds the server inside a journal commit this
 * way and checks that nothing the commit covers has been sent meanwhile.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static void gate_wait(void) {
    const char *gate = getenv("PD_FSYNC_GATE");
    if (!gate) return;
    for (int i = 0; i < 10000 && access(gate, F_OK) == 0; i++) usleep(1000);
}

int fdatasync(int fd) {
    gate_wait();
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real ? real(fd) : -1;
}

int fsync(int fd) {
    gate_wait();
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real ? real(fd) : -1;
}
