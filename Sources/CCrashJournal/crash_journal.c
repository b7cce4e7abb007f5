// See include/CCrashJournal.h. Everything the handler does is async-signal-safe: it reads a
// thread-local pointer, and calls pwrite, fsync, sigaction and raise.
#define _GNU_SOURCE
#include "CCrashJournal.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int journal_fd = -1;
static __thread const char *current_stage = NULL;
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP};
#define NSIGNALS (sizeof(fatal_signals) / sizeof(fatal_signals[0]))
static struct sigaction previous[NSIGNALS];

static void on_fatal(int sig, siginfo_t *info, void *context) {
    const char *stage = current_stage;
    if (journal_fd >= 0) {
        char line[64];
        size_t n = 0;
        const char *s = stage ? stage : "-";
        // "<stage> <signal>\n"
        while (*s && n < 40) line[n++] = *s++;
        line[n++] = ' ';
        if (sig >= 10) line[n++] = (char)('0' + sig / 10);
        line[n++] = (char)('0' + sig % 10);
        line[n++] = '\n';
        if (pwrite(journal_fd, line, n, 0) == (ssize_t)n) {
            (void)ftruncate(journal_fd, (off_t)n);
            (void)fsync(journal_fd);
        }
    }
    for (size_t i = 0; i < NSIGNALS; i++) {
        if (fatal_signals[i] != sig) continue;
        struct sigaction *p = &previous[i];
        if ((p->sa_flags & SA_SIGINFO) && p->sa_sigaction) {
            p->sa_sigaction(sig, info, context);  // Swift's backtracer: prints, then terminates
        } else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN && p->sa_handler) {
            p->sa_handler(sig);
        }
        sigaction(sig, p, NULL);
        break;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

int lgap_crash_journal_install(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -1;
    journal_fd = fd;
    for (size_t i = 0; i < NSIGNALS; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fatal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        if (sigaction(fatal_signals[i], &sa, &previous[i]) != 0) return -1;
    }
    return 0;
}

void lgap_crash_journal_enter(const char *stage) { current_stage = stage; }
