// seccomp-run: runs a command under a seccomp allow-list, the way systemd applies a unit's
// SystemCallFilter= with SystemCallErrorNumber=EPERM: every system call not listed fails with EPERM.
//   seccomp-run ALLOWED_SYSCALLS_FILE -- COMMAND [ARGS...]
// The file lists one system call name per line (IntegrationTests/SystemdUnitTests expands the unit's
// filter groups with `systemd-analyze syscall-filter` to write it). Names this libseccomp does not know
// on this architecture are skipped, as systemd skips them. A test tool: lgap never needs it.
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: %s ALLOWED_SYSCALLS_FILE -- COMMAND [ARGS...]\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 2; }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx) { fprintf(stderr, "seccomp_init failed\n"); return 2; }
    char line[256];
    int allowed = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        int nr = seccomp_syscall_resolve_name(line);
        if (nr == __NR_SCMP_ERROR) continue;
        if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) == 0) allowed++;
    }
    fclose(f);
    int rc = seccomp_load(ctx);
    if (rc != 0) { fprintf(stderr, "seccomp_load: %s\n", strerror(-rc)); return 2; }
    seccomp_release(ctx);
    fprintf(stderr, "seccomp-run: %d system calls allowed, the rest fail with EPERM\n", allowed);
    execvp(argv[3], argv + 3);
    perror(argv[3]);
    return 127;
}
