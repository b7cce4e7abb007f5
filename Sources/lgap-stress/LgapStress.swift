// lgap-stress: reliability programs (not tests) that drive a real lgapd the way a hostile or unlucky
// world would, and print a JSON report with a verdict. Each exits non-zero when its invariant broke.
import ArgumentParser
import Foundation
import Locations
import ServiceHarness

@main
struct LgapStress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lgap-stress",
        abstract: "Adversaries for lgapd: kill storms, wire fuzzing, overload, poison jobs, restart storms, mute peers, many producers, a full disk.",
        subcommands: [Soak.self, FuzzWire.self, Overload.self, Poison.self, RestartStorm.self, MutePeer.self, ManyProducers.self, DiskFull.self])
}

/// Options every program shares.
struct Common: ParsableArguments {
    @Option(help: "Model pack (default: the repository's models/cifar10-mini).") var pack: String?
    @Option(help: "Images to send (default: the default pack's samples).") var images: String?
    @Option(help: "Working folder (databases, logs).") var workdir: String?

    var packFolder: String { pack ?? Locations.pack }

    func folder(_ name: String) throws -> String {
        let dir = (workdir ?? NSTemporaryDirectory() + "lgap-stress-\(getpid())") + "/" + name
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Image files from --images (default: the default pack's samples) as bytes.
    func loadImages() throws -> [[UInt8]] {
        let dir = images ?? (Locations.pack + "/samples")
        let files = (try FileManager.default.contentsOfDirectory(atPath: dir)).filter { $0.hasSuffix(".jpg") || $0.hasSuffix(".png") }.sorted()
        guard !files.isEmpty else { throw StressError("no images in \(dir)") }
        return try files.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))) }
    }
}

struct StressError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A value shared between the stress programs' threads, guarded by a lock.
final class Shared<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func with<R>(_ body: (inout T) -> R) -> R { lock.lock(); defer { lock.unlock() }; return body(&value) }
    var get: T { with { $0 } }
}

/// Prints a report as pretty JSON.
func printReport(_ report: [String: Any]) throws {
    print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self))
}
