/* main.c -- paidan-bench: one tool, named modes, one report format. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

#ifndef PD_VERSION
#define PD_VERSION "0.0.0"
#endif

static void usage(FILE *out) {
    fprintf(out,
            "usage: paidan-bench MODE [options]\n"
            "\n"
            "modes:\n"
            "  micro    the index (and engine) in-process: latency percentiles,\n"
            "           ops/s and memory per volunteer on a generated county\n"
            "  load     a TCP load generator against a running paidan-server: closed or\n"
            "           open loop (latency from the intended send time), a command mix,\n"
            "           connections, pipelining, a rate sweep\n"
            "  replay   historical (or generated) orders through the engine in virtual\n"
            "           time, policies side by side: fill rate, time to accept, ETA,\n"
            "           the 15-minute circle, fairness of hours\n"
            "  compare  the same nearby workload against paidan, Redis GEOSEARCH,\n"
            "           PostGIS and Tarantool, in one run\n"
            "  journal  durability: journal appends/s per fsync policy, acknowledged\n"
            "           writes/s over TCP, snapshot and recovery time of a 1M + 1M state\n"
            "\n"
            "Run 'paidan-bench MODE --help' for the options of a mode;\n"
            "'paidan-bench -V' (--version) prints the version.\n"
            "Every mode prints a table, or one JSON object with --json. Exit status:\n"
            "0 measured, 1 nothing (or not all that was asked) could be measured or\n"
            "written, 2 a refused command line.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("paidan-bench %s\n", PD_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "micro") == 0) return pd__bench_micro(argc - 1, argv + 1);
    if (strcmp(argv[1], "load") == 0) return pd__bench_load(argc - 1, argv + 1);
    if (strcmp(argv[1], "replay") == 0) return pd__bench_replay(argc - 1, argv + 1);
    if (strcmp(argv[1], "compare") == 0) return pd__bench_compare(argc - 1, argv + 1);
    if (strcmp(argv[1], "journal") == 0) return pd__bench_journal(argc - 1, argv + 1);
    if (argv[1][0] == '-') {
        /* A flag before the mode: the error and where to look, not the
         * whole usage burying it. */
        fprintf(stderr, "paidan-bench: unknown option '%s' (options follow the mode)\n", argv[1]);
        fprintf(stderr, "try 'paidan-bench --help'\n");
        return 2;
    }
    fprintf(stderr, "paidan-bench: unknown mode '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
