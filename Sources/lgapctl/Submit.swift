// lgapctl submit: sends image files to lgapd over ZeroMQ (pull or router mode), optionally waiting
// for their results on the PUB socket.
import ArgumentParser
import Foundation
import JobModel
import Messaging

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Submit images to a running lgapd.")

    @Option(help: "lgapd's ingest endpoint.")
    var endpoint = "tcp://127.0.0.1:5555"

    @Option(help: "pull (PUSH, no acks) or router (DEALER, waits for each ack).")
    var mode = "pull"

    @Option(help: "Results endpoint (for --wait).")
    var results = "tcp://127.0.0.1:5556"

    @Option(help: "Ground-truth label stored with every job (evaluation only).")
    var label: String?

    @Flag(name: .customLong("label-from-dir"), help: "Use each file's parent folder name as its label.")
    var labelFromDir = false

    @Flag(name: .customLong("label-from-name"), help: "Use each file name's part before the first '-' as its label (cat-0042.png → cat).")
    var labelFromName = false

    @Option(help: "JSON object of purification params for every job, e.g. '{\"strength\":0.3}'.")
    var params: String?

    @Flag(help: "Wait for every job's result and print it.")
    var wait = false

    @Option(help: "Seconds to wait for acks (router) and results (--wait).")
    var timeout: Double = 600

    @Option(name: .customLong("server-key"), help: "lgapd's CURVE public key (enables CURVE).")
    var serverKey: String?

    @Option(name: .customLong("key-file"), help: "File with this client's CURVE key pair (lgapctl keygen output).")
    var keyFile: String?

    @Flag(help: "One JSON object per line.")
    var json = false

    @Argument(help: "Image files or folders.")
    var paths: [String]

    func validate() throws {
        guard ["pull", "router"].contains(mode) else { throw ValidationError("--mode must be pull or router") }
        if serverKey != nil && keyFile == nil { throw ValidationError("--server-key needs --key-file") }
        if [labelFromDir, labelFromName, label != nil].filter({ $0 }).count > 1 {
            throw ValidationError("--label, --label-from-dir and --label-from-name exclude each other")
        }
    }

    /// The ground-truth label for `file`: its folder's name, its name's prefix, or --label.
    func labelOf(_ file: String) -> String? {
        let url = URL(fileURLWithPath: file)
        if labelFromDir { return url.deletingLastPathComponent().lastPathComponent }
        if labelFromName, let prefix = url.lastPathComponent.split(separator: "-").first, prefix != url.lastPathComponent[...] {
            return String(prefix)
        }
        return label
    }

    func run() throws {
        let files = InputFiles.expand(paths)
        guard !files.isEmpty else { throw ValidationError("no image files found") }
        var extraParams: [String: Any]? = nil
        if let params {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(params.utf8)) as? [String: Any] else {
                throw ValidationError("--params must be a JSON object")
            }
            extraParams = obj
        }
        let context = try ZMQContext()
        let keys = try keyFile.map { try KeyFile.read($0) }
        var sub: ZMQSocket? = nil
        if wait {
            sub = try ZMQSocket(context, .sub)
            if let serverKey, let keys { try sub?.setCurveClient(serverKey: serverKey, keys: keys) }
            try sub?.subscribe(topic: "result")
            try sub?.connect(results)
            Thread.sleep(forTimeInterval: 0.3)  // let the subscription reach the publisher
        }
        let sock = try ZMQSocket(context, mode == "router" ? .dealer : .push)
        if let serverKey, let keys { try sock.setCurveClient(serverKey: serverKey, keys: keys) }
        try sock.connect(endpoint)
        var pending: [String: String] = [:]  // id → file, until its result arrives
        var counts: [String: Int] = [:]
        let progress = ProgressLine(total: files.count)
        for (n, file) in files.enumerated() {
            guard let data = FileManager.default.contents(atPath: file) else {
                Output.stderr("cannot read \(file)")
                counts["unreadable", default: 0] += 1
                continue
            }
            let id = Self.jobID(for: file)
            var header: [String: Any] = ["id": id, "format": "auto", "meta": ["file": file]]
            if let l = labelOf(file) { header["label"] = l }
            if let extraParams { header["params"] = extraParams }
            let headerBytes = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
            try sock.send([headerBytes, [UInt8](data)], timeoutMs: Int32(timeout * 1000))
            if mode == "router" {
                guard let reply = try sock.receive(timeoutMs: Int32(timeout * 1000)), let ack = reply.frames.last.flatMap(Ack.decode) else {
                    throw ValidationError("no acknowledgement from \(endpoint) within \(Int(timeout)) s")
                }
                counts[ack.status.rawValue, default: 0] += 1
                if ack.status == .accepted { pending[ack.id] = file }
                report(file: file, ack: ack)
            } else {
                counts["sent", default: 0] += 1
                pending[id] = file
                if !wait && !json { print("\(file)\t\(id)\tsent") }
                if !wait && json { Output.jsonLine(["file": file, "id": id, "status": "sent"]) }
            }
            progress.update(n + 1)
        }
        if let sub {
            let deadline = Date(timeIntervalSinceNow: timeout)
            while !pending.isEmpty && Date() < deadline {
                guard let msg = try sub.receive(timeoutMs: 500), msg.frames.count == 2,
                    let obj = try? JSONSerialization.jsonObject(with: Data(msg.frames[1])) as? [String: Any],
                    let id = obj["id"] as? String, let file = pending.removeValue(forKey: id)
                else { continue }
                if json {
                    Output.jsonLine(obj.merging(["file": file]) { old, _ in old })
                } else {
                    Output.line("\(id)\t\(obj["status"] ?? "")\t\(obj["label"] ?? obj["reason"] ?? "")\t\(obj["caption"] ?? "")")
                }
            }
            if !pending.isEmpty { Output.stderr("\(pending.count) result(s) did not arrive within \(Int(timeout)) s") }
        }
        Output.stderr(counts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
        if !pending.isEmpty && wait { throw ExitCode(1) }
    }

    func report(file: String, ack: Ack) {
        // With --wait an accepted job is reported by its result line, in JSON as in text.
        if wait && ack.status == .accepted { return }
        if json {
            var o: [String: Any] = ["file": file, "id": ack.id, "status": ack.status.rawValue]
            if let r = ack.reason { o["reason"] = r.rawValue }
            if let m = ack.message { o["message"] = m }
            Output.jsonLine(o)
        } else {
            Output.line("\(file)\t\(ack.id)\t\(ack.status.rawValue)\(ack.reason.map { "\t" + $0.rawValue } ?? "")")
        }
    }

    /// "<file stem>-<8 random hex>": readable, and unique across submissions of the same file.
    static func jobID(for file: String) -> String {
        let stem = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        let safe = String(
            stem.unicodeScalars.map { s -> Character in
                (CharacterSet.alphanumerics.contains(s) && s.isASCII) || "._-".unicodeScalars.contains(s) ? Character(s) : "_"
            }.prefix(100))
        return "\(safe)-\(String(format: "%08x", UInt32.random(in: 0...UInt32.max)))"
    }
}

enum KeyFile {
    /// Reads a key pair written by `lgapctl keygen` ("public-key: …" and "secret-key: …" lines).
    static func read(_ path: String) throws -> CurveKeyPair {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read \(path)") }
        var pub: String?, sec: String?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "public-key" { pub = parts[1] }
            if parts[0] == "secret-key" { sec = parts[1] }
        }
        guard let s = sec, CurveKeyPair.isZ85Key(s) else { throw ValidationError("\(path): no secret-key line") }
        return CurveKeyPair(publicKey: try pub ?? CurveKeyPair.publicKey(forSecret: s), secretKey: s)
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make a CURVE key pair (Z85) for lgapd or a producer.")

    @Option(help: "Write the pair to this new file (created 0600; never overwritten, never through a link) and print only the public key.")
    var output: String?

    func run() throws {
        let k = try CurveKeyPair.generate()
        let text = "public-key: \(k.publicKey)\nsecret-key: \(k.secretKey)\n"
        if let output {
            try SafeFile.write(Array(text.utf8), to: output, replacing: false, mode: 0o600)
            print(k.publicKey)
        } else {
            print(text, terminator: "")
        }
    }
}
