// JSON lines on stdout, progress on stderr (only when stderr is a terminal), and the escaping every
// human-readable line gets: text from producers (labels, meta, errors) may hold control characters.
import Foundation
import JobModel

enum Output {
    static func jsonLine(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]),
            let s = String(data: data, encoding: .utf8)
        else { return }
        print(s)
    }

    static func jsonLine<T: Encodable>(_ value: T) {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? e.encode(value) else { return }
        print(String(decoding: data, as: UTF8.self))
    }

    /// A line for a terminal: control characters (ESC, newlines, bidi overrides) shown as escapes.
    static func line(_ s: String) { print(Sanitize.text(s)) }

    static func stderr(_ s: String) {
        FileHandle.standardError.write(Data((Sanitize.text(s) + "\n").utf8))
    }
}

/// "done/total, rate, ETA" on stderr, redrawn in place, when stderr is a terminal.
final class ProgressLine {
    let total: Int
    let start = Date()
    let enabled = isatty(STDERR_FILENO) != 0
    var last = Date.distantPast

    init(total: Int) { self.total = total }

    func update(_ done: Int) {
        guard enabled, Date().timeIntervalSince(last) > 0.2 || done == total else { return }
        last = Date()
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "\r%d/%d  %.1f img/s  ETA %.0fs ", done, total, rate, eta)
        FileHandle.standardError.write(Data(line.utf8))
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
