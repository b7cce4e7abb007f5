// Where lgap finds and puts things, from environment variables with portable defaults — the one place
// that answers "which pack, which database, which configuration, which Python, where do evaluations
// go". No path of a build machine appears anywhere else.
//
//   LGAP_PACK    the model pack         default: models/cifar10-mini of the repository the binary was
//                                       built in, else the installed pack (<bin>/../share/lgap/packs of
//                                       the binary's own prefix, /usr/local/share/lgap/packs,
//                                       /usr/share/lgap/packs)
//   LGAP_DB      the provenance store   default: the configuration's [daemon] database
//   LGAP_CONFIG  lgapd's configuration  default: /etc/lgapd/lgapd.toml, $XDG_CONFIG_HOME/lgap/lgapd.toml,
//                                       then the repository's Config/lgapd.toml
//   LGAP_DATA    datasets (a folder laid out like ../shared: data/cifar10, models/resnet-cifar);
//                                       default $XDG_DATA_HOME/lgap when it holds data/, else ../shared
//                                       beside the repository
//   LGAP_PYTHON  the tools' interpreter default: python3 on PATH
//   LGAP_EVAL    evaluation outputs     default: $XDG_DATA_HOME/lgap/eval
import Foundation

public enum Locations {
    public static let defaultPackName = "cifar10-mini"

    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    static func env(_ key: String) -> String? { environment[key].flatMap { $0.isEmpty ? nil : $0 } }

    static var home: String { environment["HOME"] ?? NSHomeDirectory() }

    static func xdg(_ key: String, _ fallback: String) -> String { env(key) ?? home + "/" + fallback }

    /// The repository this binary was built in (…/<repo>/.build/<config>/<binary>), if it still exists:
    /// the folder above the binary that holds Package.swift and models/.
    public static var repository: String? {
        var dir = executableFolder
        for _ in 0..<6 {
            let fm = FileManager.default
            if fm.fileExists(atPath: dir.appendingPathComponent("Package.swift").path),
                fm.fileExists(atPath: dir.appendingPathComponent("models").path)
            {
                return dir.path
            }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// The folder of the running binary, links resolved (from /proc/self/exe, so a binary started
    /// through PATH is found too).
    static var executableFolder: URL {
        (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).resolvingSymlinksInPath().deletingLastPathComponent()
    }

    public static var pack: String {
        if let p = env("LGAP_PACK") { return p }
        var candidates: [String] = []
        if let repo = repository { candidates.append(repo + "/models/" + defaultPackName) }
        // Installed under any prefix: PREFIX/bin/lgapd finds PREFIX/share/lgap/packs.
        candidates.append(executableFolder.deletingLastPathComponent().path + "/share/lgap/packs/" + defaultPackName)
        candidates += ["/usr/local/share/lgap/packs/" + defaultPackName, "/usr/share/lgap/packs/" + defaultPackName]
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/pack.json") } ?? candidates[0]
    }

    /// lgapd's configuration files, most specific first; the first that exists is read.
    public static var configCandidates: [String] {
        if let c = env("LGAP_CONFIG") { return [c] }
        var out = ["/etc/lgapd/lgapd.toml", xdg("XDG_CONFIG_HOME", ".config") + "/lgap/lgapd.toml"]
        if let repo = repository { out.append(repo + "/Config/lgapd.toml") }
        return out
    }

    public static var config: String? { configCandidates.first { FileManager.default.fileExists(atPath: $0) } }

    /// $LGAP_DB when set (the configuration's database otherwise: see DaemonConfig).
    public static var databaseOverride: String? { env("LGAP_DB") }

    public static var data: String {
        if let d = env("LGAP_DATA") { return d }
        let x = xdg("XDG_DATA_HOME", ".local/share") + "/lgap"
        if FileManager.default.fileExists(atPath: x + "/data") { return x }
        if let repo = repository { return (repo as NSString).deletingLastPathComponent + "/shared" }
        return x
    }

    public static var python: String { env("LGAP_PYTHON") ?? "python3" }

    public static var eval: String { env("LGAP_EVAL") ?? xdg("XDG_DATA_HOME", ".local/share") + "/lgap/eval" }

    public static var cache: String { env("LGAP_CACHE") ?? xdg("XDG_CACHE_HOME", ".cache") + "/lgap" }
}
