/* Runs a command and prints "<user+sys ms> <peak RSS KiB> <wall ms>" of the
 * child alone, read with wait4(2) (wall time from fork to reaping, on the
 * monotonic clock). A C parent keeps the floor low: ru_maxrss
 * includes what the child inherited before exec, so a Python or shell
 * parent would inflate it. Build: cc -O2 -o measure measure.c */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: measure COMMAND [ARGS...]\n");
        return 2;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execv(argv[1], argv + 1);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("wait4");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double wall = (end.tv_sec - start.tv_sec) * 1000.0 + (end.tv_nsec - start.tv_nsec) / 1e6;
    double ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
                (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
    printf("%.3f %ld %.3f\n", ms, ru.ru_maxrss, wall);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
