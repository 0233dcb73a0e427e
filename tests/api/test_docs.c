/* test_docs.c -- docs/protocol.md documents every method of methods.def
 * (as a "### `name`" heading) and every error code of PD_ERR_MAP (as a
 * table row "| code | NAME |"), so the docs cannot fall behind the table.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paidan/error.h"

static char *read_doc(const char *rel) {
    const char *src = getenv("PD_SOURCE_DIR");
    cr_assert(src, "PD_SOURCE_DIR is not set (run through ctest)");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", src, rel);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(docs, every_method_documented) {
    char *doc = read_doc("docs/protocol.md");
    static const char *const names[] = {
#define PD_METHOD(id, name, flags) name,
#include "methods.def"
#undef PD_METHOD
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char heading[128];
        snprintf(heading, sizeof(heading), "### `%s`", names[i]);
        cr_expect(strstr(doc, heading), "docs/protocol.md lacks the heading %s", heading);
    }
    free(doc);
}

Test(docs, every_error_code_documented) {
    char *doc = read_doc("docs/protocol.md");
    for (int code = 0; code < PD_ERR__END; code++) {
        char row[96];
        snprintf(row, sizeof(row), "| %d | `%s` |", code, pd_err_name((pd_err)code));
        cr_expect(strstr(doc, row), "docs/protocol.md lacks the error row %s", row);
    }
    free(doc);
}

/* Every flag `paidan-server --help` lists, read from the binary itself. */
Test(docs, every_flag_documented) {
    char *doc = read_doc("docs/operations-server.md");
    const char *dir = getenv("PD_BINARY_DIR");
    cr_assert(dir, "PD_BINARY_DIR is not set (run through ctest)");
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "'%s/api/paidan-server' --help", dir);
    FILE *help = popen(cmd, "r");
    cr_assert(help, "cannot run %s", cmd);
    char line[512];
    int flags = 0;
    while (fgets(line, sizeof(line), help)) {
        const char *p = line + strspn(line, " ");
        if (strncmp(p, "--", 2) != 0) continue;
        size_t n = strcspn(p, " \n");
        char item[80];
        snprintf(item, sizeof(item), "`%.*s", (int)(n < 64 ? n : 64), p);
        cr_expect(strstr(doc, item), "docs/operations-server.md lacks %s", item + 1);
        flags++;
    }
    cr_assert_eq(pclose(help), 0, "paidan-server --help failed");
    cr_assert_geq(flags, 20, "only %d flags read from paidan-server --help", flags);
    free(doc);
}
