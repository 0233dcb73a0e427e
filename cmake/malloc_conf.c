/* malloc_conf.c -- jemalloc's configuration, linked into every paidan
 * executable that uses jemalloc (see pd_executable in CMakeLists.txt).
 *
 * thp:always: jemalloc asks for transparent huge pages on the memory it
 * maps (madvise(MADV_HUGEPAGE); the kernel's default mode on Debian 12 is
 * "madvise", which then applies). paidan's state is a few hundred bytes per
 * volunteer and order, touched once when it is built: with 4 KiB pages a
 * restore of 1M volunteers + 1M orders took about 110,000 page faults, a
 * third of its time, and fork() for a snapshot copied the page tables of
 * every one of them. Measured with `paidan-bench journal`: recovery 3.3 s ->
 * 2.1 s, snapshot 1.1 s -> 0.7 s, fork() 34 ms -> 8 ms (docs/operations.md).
 * A copy-on-write fault on a huge page during a snapshot copies 4 KiB, not
 * 2 MiB (Linux >= 5.8 splits it). MALLOC_CONF in the environment still
 * overrides this (e.g. MALLOC_CONF=thp:default to measure without it).
 */
const char *malloc_conf = "thp:always";
