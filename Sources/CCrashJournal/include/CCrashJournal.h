// The crash journal's async-signal-safe half (see Sources/Service/CrashJournal.swift): a stage
// worker names the stage it is inside in a thread-local; a fatal signal on that thread writes the name
// to a file opened in advance, then lets the previous handler (Swift's backtracer, or the default
// action) finish the crash.
#ifndef LGAP_CRASH_JOURNAL_H
#define LGAP_CRASH_JOURNAL_H

/// Opens `path` (created 0600) and installs handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT and
/// SIGTRAP. Returns 0, or -1 with errno set.
int lgap_crash_journal_install(const char *path);

/// The calling thread is now inside `stage` (a static string), or inside no stage (NULL).
void lgap_crash_journal_enter(const char *stage);

#endif
