// What this build is: the release version and the commit it was built from (`git describe`, written
// by the GitDescribe build plugin before every build; "unknown" outside a git checkout). The run
// records it with every job's provenance; `--version` and /metrics show it.
public enum BuildInfo {
    public static let release = "0.4.0"
    /// `git describe --tags --always --dirty` of the source tree at build time.
    public static let commit = gitDescription
    /// "0.4.0 (git 570cf3c-dirty)".
    public static var version: String { "\(release) (git \(commit))" }
}
