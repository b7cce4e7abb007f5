// Shared helpers for golden tests: locating fixtures and comparing tensors element by element.
import Foundation
import NN
import Tensor

public enum Fixtures {
    /// Tests/Fixtures in the source tree.
    public static var directory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
    }

    public static func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// The repository root (for models/ and the ../shared folder beside it).
    public static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// ../shared beside the repository (or $LGAP_SHARED).
    public static var shared: String {
        ProcessInfo.processInfo.environment["LGAP_SHARED"]
            ?? (repositoryRoot as NSString).appendingPathComponent("../shared")
    }
}

/// The outcome of comparing every element of two tensors with |a − b| ≤ atol + rtol·|b|.
public struct Comparison: CustomStringConvertible {
    public let ok: Bool
    public let maxAbs: Float
    public let maxRel: Float
    public let failures: Int
    public let report: String
    public var description: String { report }
}

public func compare(_ actual: Tensor, _ expected: Tensor, atol: Float, rtol: Float, name: String = "") -> Comparison {
    guard actual.shape == expected.shape else {
        return Comparison(
            ok: false, maxAbs: .infinity, maxRel: .infinity, failures: -1,
            report: "\(name): shape \(actual.shape) != expected \(expected.shape)")
    }
    let a = actual.scalars, e = expected.scalars
    var maxAbs: Float = 0, maxRel: Float = 0, failures = 0
    var first: [String] = []
    for i in 0..<a.count {
        let diff = abs(a[i] - e[i])
        let bad = !(diff <= atol + rtol * abs(e[i])) || a[i].isNaN != e[i].isNaN
        if diff.isFinite || a[i] != e[i] {
            maxAbs = max(maxAbs, diff.isNaN ? .infinity : diff)
            if abs(e[i]) > 1e-6 { maxRel = max(maxRel, diff / abs(e[i])) }
        }
        if bad {
            failures += 1
            if first.count < 5 { first.append("[\(i)] got \(a[i]) expected \(e[i])") }
        }
    }
    let summary = "\(name): \(a.count) elements, max |a−b| = \(maxAbs), max rel = \(maxRel) (atol \(atol), rtol \(rtol))"
    let report = failures == 0 ? summary : summary + ", \(failures) outside tolerance: " + first.joined(separator: "; ")
    return Comparison(ok: failures == 0, maxAbs: maxAbs, maxRel: maxRel, failures: failures, report: report)
}

/// A golden fixture file written by a tools/goldens script: tensors "<case>.<role>" plus JSON params.
public final class GoldenFile {
    public let file: SafeTensorsFile

    public init(_ name: String) throws {
        file = try SafeTensorsFile(path: Fixtures.path(name))
    }

    public func tensor(_ caseName: String, _ role: String) throws -> Tensor {
        try file.tensor("\(caseName).\(role)")
    }

    public func integers(_ caseName: String, _ role: String) throws -> [Int] {
        try file.integers("\(caseName).\(role)").values
    }

    public func has(_ caseName: String, _ role: String) -> Bool { file.tensors["\(caseName).\(role)"] != nil }

    public func params(_ caseName: String) -> [String: Any] {
        guard let s = file.metadata[caseName], let d = s.data(using: .utf8),
            let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any]
        else { return [:] }
        return obj
    }

    /// Case names that start with `prefix`.
    public func cases(_ prefix: String) -> [String] {
        file.metadata.keys.filter { $0.hasPrefix(prefix) }.sorted()
    }
}

/// Appends a line to the parity log ($LGAP_PARITY_LOG) so a run can print one table of max errors.
public func recordParity(_ c: Comparison) {
    guard let path = ProcessInfo.processInfo.environment["LGAP_PARITY_LOG"] else { return }
    let line = c.report + "\n"
    if let h = FileHandle(forWritingAtPath: path) {
        h.seekToEndOfFile(); h.write(line.data(using: .utf8)!); h.closeFile()
    } else {
        _ = FileManager.default.createFile(atPath: path, contents: line.data(using: .utf8))
    }
}

extension Fixtures {
    /// Extracts `names` (or the whole archive) from ../shared's CIFAR-10 test-dev archive into a fresh
    /// temporary folder and returns it; nil when ../shared is not there. The caller removes the folder.
    public static func extractTestDev(_ names: [String] = []) throws -> String? {
        let archive = shared + "/data/cifar10/test-dev.tar.gz"
        guard FileManager.default.fileExists(atPath: archive) else { return nil }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-testdev-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        tar.arguments = ["tar", "xzf", archive, "-C", dir] + names
        try tar.run()
        tar.waitUntilExit()
        guard tar.terminationStatus == 0 else { throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: archive]) }
        return dir
    }
}
