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
 * 2 MiB (Linux >= 5.8 splits it).
 *
 * The cost is resident memory: a huge page is resident whole. At 10^6
 * volunteers (`paidan-bench micro`) the index takes 125 bytes a volunteer
 * with huge pages against 113 without, once jemalloc has returned the
 * blocks cells grew out of (pd_alloc_release_free; 141 against 124 right
 * after the load, before it does). The target is 128.
 *
 * MALLOC_CONF in the environment still overrides this (for instance
 * MALLOC_CONF=thp:default measures without huge pages).
 */
const char *malloc_conf = "thp:always";
