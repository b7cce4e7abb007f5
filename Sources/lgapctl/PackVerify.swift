// lgapctl pack verify: checks a pack against the file hashes its builder recorded in pack.json
// ("files", written by tools/packs/build_pack.py) and that every stage loads.
import ArgumentParser
import Digest
import Foundation
import Locations
import Models

struct PackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack", abstract: "Inspect model packs.", subcommands: [PackVerify.self])
}

struct PackVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a pack's files against the SHA-256 hashes in its pack.json and load every stage.",
        discussion: "Exit status 0: every listed file matches and the pack loads; 1: a file is missing or differs, or a stage does not load.")

    @Option(help: "Pack folder (default: models/cifar10-mini).")
    var pack: String?

    func run() throws {
        let folder = pack ?? Locations.pack
        let manifest: PackManifest
        do { manifest = try PackManifest.load(folder: folder) } catch { throw ValidationError("\(error)") }
        var bad = 0
        let files = manifest.files ?? [:]
        if files.isEmpty { print("pack.json lists no file hashes (\"files\"): only loading is checked") }
        for (name, expected) in files.sorted(by: { $0.key < $1.key }) {
            let path = (folder as NSString).appendingPathComponent(name)
            // A listed path must stay inside the pack: no absolute paths, no "..".
            guard !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
                print("REFUSED \(name): a listed file must be a relative path inside the pack")
                bad += 1
                continue
            }
            guard FileManager.default.fileExists(atPath: path) else {
                print("MISSING \(name)")
                bad += 1
                continue
            }
            let actual = try SHA256.hex(fileAt: path)
            if actual == expected.lowercased() {
                print("ok      \(name)")
            } else {
                print("DIFFERS \(name): sha256 \(actual), pack.json says \(expected)")
                bad += 1
            }
        }
        do {
            let loaded = try Pack(folder: folder)
            let stages = ["classifier"] + (loaded.captioner != nil ? ["captioner"] : []) + (loaded.purifier != nil ? ["purifier"] : [])
            print("loads   \(stages.joined(separator: ", ")) (\(manifest.name) \(manifest.version))")
        } catch {
            print("LOAD    \(error)")
            bad += 1
        }
        if bad > 0 {
            print("\(bad) problem\(bad == 1 ? "" : "s") in \(folder)")
            throw ExitCode(1)
        }
    }
}
