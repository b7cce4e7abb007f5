// Where the default pack lives when --pack is not given.
import Foundation

public enum PackLocator {
    public static let defaultPackName = "cifar10-mini"

    /// $LGAP_PACK, then models/cifar10-mini in the working directory, beside the executable's
    /// repository (.build/<config>/<exe> → repo root), and the install location.
    public static func defaultPack() -> String {
        let env = ProcessInfo.processInfo.environment
        if let p = env["LGAP_PACK"], !p.isEmpty { return p }
        var candidates = [FileManager.default.currentDirectoryPath + "/models/\(defaultPackName)"]
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent("models/\(defaultPackName)").path)
            dir = dir.deletingLastPathComponent()
        }
        candidates.append("/usr/local/share/lgap/packs/\(defaultPackName)")
        candidates.append("/usr/share/lgap/packs/\(defaultPackName)")
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? candidates[0]
    }
}
