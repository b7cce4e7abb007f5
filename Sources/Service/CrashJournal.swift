// Which model stage was running when lgapd died. A stage worker names its stage before it processes
// a micro-batch and clears it after (a thread-local in CCrashJournal); a fatal signal writes the name of
// the crashing thread's stage to "<state dir>/<node>.crash" before the crash proceeds. The next start
// reads it: only the jobs inside that stage become suspects. No journal (kill -9, OOM, power loss) or
// a crash outside the stages: every job in flight is a suspect.
import CCrashJournal
import Foundation
import JobModel

public enum CrashJournal {
    /// What the journal says about the last run.
    public enum Verdict: Equatable, Sendable {
        case clean
        case crashed(stage: StageName?, signal: Int32)

        /// The stage to blame, when the journal names one. Otherwise (no entry: the last run stopped
        /// cleanly and released its jobs, or died without a handler running — kill -9, OOM, power loss;
        /// or "-": a crash outside the model stages) every job still in flight is a suspect.
        public var crashedStage: StageName? {
            if case .crashed(let stage, _) = self { return stage }
            return nil
        }
    }

    public static func install(path: String) throws {
        guard lgap_crash_journal_install(path) == 0 else {
            throw ConfigError(message: "cannot open the crash journal \(path): \(String(cString: strerror(errno)))")
        }
    }

    private static let names: [StageName: StaticString] = [.decode: "decode", .caption: "caption", .purify: "purify", .classify: "classify"]

    /// The calling thread is inside `stage` until `leave()`.
    public static func enter(_ stage: StageName) {
        // String literals have a fixed address for the whole run: safe to leave in the thread-local.
        if let s = names[stage] { lgap_crash_journal_enter(UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)) }
    }

    public static func leave() { lgap_crash_journal_enter(nil) }

    /// Reads the journal a crashed run left ("<stage> <signal>").
    public static func read(path: String) -> Verdict {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty else { return .clean }
        let parts = text.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        return .crashed(stage: parts.first.flatMap(StageName.init(rawValue:)), signal: parts.count > 1 ? Int32(parts[1]) ?? 0 : 0)
    }

    /// Empties the journal once its verdict was applied.
    public static func clear(path: String) {
        if let h = FileHandle(forWritingAtPath: path) { try? h.truncate(atOffset: 0); try? h.close() }
    }
}
