// lgapd's log lines: swift-log's text layout ("<time> <level> lgapd : key=value [lgapd] message") or
// one JSON object per line for journald/Loki (`log_format = "json"`). The level can change while the
// daemon runs (SIGHUP re-reads log_level). Every message and metadata value passes through
// Sanitize, so text a peer sent can never forge a line or drive a terminal.
import Foundation
import JobModel
import Logging

public enum LogSetup {
    final class Settings: @unchecked Sendable {
        private let lock = NSLock()
        private var level_ = Logger.Level.info
        var level: Logger.Level {
            get { lock.lock(); defer { lock.unlock() }; return level_ }
            set { lock.lock(); level_ = newValue; lock.unlock() }
        }
        var format = LogFormat.text
    }

    static let settings = Settings()
    private static let output = NSLock()

    /// Installs the handler (once per process).
    public static func bootstrap(level: Logger.Level, format: LogFormat) {
        settings.level = level
        settings.format = format
        LoggingSystem.bootstrap { label in Handler(label: label) }
    }

    /// Changes the level of every logger at once.
    public static func setLevel(_ level: Logger.Level) { settings.level = level }

    struct Handler: LogHandler {
        let label: String
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level {
            get { LogSetup.settings.level }
            set { LogSetup.settings.level = newValue }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(
            level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String,
            file: String, function: String, line: UInt
        ) {
            let merged = metadata.merging(extra ?? [:]) { $1 }
            let text: String
            switch LogSetup.settings.format {
            case .text:
                let kv = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\(Sanitize.text("\($0.value)"))" }.joined(separator: " ")
                text = "\(LogSetup.timestamp()) \(level) \(label) :\(kv.isEmpty ? "" : " " + kv) [\(source)] \(Sanitize.text("\(message)"))\n"
            case .json:
                var o: [String: String] = ["time": LogSetup.timestamp(), "level": "\(level)", "logger": label, "message": "\(message)"]
                for (k, v) in merged where o[k] == nil { o[k] = "\(v)" }
                let data = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
                text = String(decoding: data, as: UTF8.self) + "\n"
            }
            LogSetup.output.lock()
            FileHandle.standardError.write(Data(text.utf8))
            LogSetup.output.unlock()
        }
    }

    static func timestamp() -> String {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        var tm = tm()
        var seconds = t.tv_sec
        gmtime_r(&seconds, &tm)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
            tm.tm_sec, Int(t.tv_nsec / 1_000_000))
    }
}
