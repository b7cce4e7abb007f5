// lgapctl purify: the whole pipeline offline (decode → caption → purify → classify), one JSON line
// per image — exactly the stages lgapd runs, without the daemon.
import ArgumentParser
import Digest
import Foundation
import ImageIO
import JobModel
import JobProcessing
import Locations
import Models
import Tensor

struct Purify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Caption, purify and classify images offline (no daemon).")

    @Option(help: "Pack folder (default: models/cifar10-mini).") var pack: String?
    @Option(help: "Purification strength in (0, 1] (default: the pack's).") var strength: Double?
    @Option(help: "DDIM steps of the full schedule (default: the pack's).") var steps: Int?
    @Option(help: "Classifier-free guidance scale; ≤ 1 disables it (default: the pack's).") var guidance: Double?
    @Option(help: "Independent purifications per image; the classifier averages them.") var ensemble: Int?
    @Option(help: "DDIM eta (default 0).") var eta: Double?
    @Option(help: "Seed for every image (default: a fresh random seed per image, printed).") var seed: UInt64?
    @Flag(name: .customLong("no-purify"), help: "Skip purification (caption + classify the input as is).") var noPurify = false
    @Flag(name: .customLong("empty-caption"), help: "Purify with the empty caption (no language guidance); captions are still generated and reported.")
    var emptyCaption = false
    @Option(help: "Images per batch (caption, purify — one denoising loop for the batch — and classify).") var batch = 8
    @Option(name: .customLong("save-purified"), help: "Folder for purified PNGs.") var savePurified: String?
    @Option(help: "Engine threads.") var threads = 2
    @Flag(help: "One JSON object per line (the default prints a table).") var json = false
    @Argument(help: "Image files or folders (walked recursively).") var paths: [String]

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
    }

    func run() throws {
        Engine.threads = threads
        let packDir = pack ?? Locations.pack
        let loaded: Pack
        do { loaded = try Pack(folder: packDir) } catch { throw ValidationError("cannot load pack \(packDir): \(error)") }
        let processor = JobProcessor(pack: loaded, options: ProcessorOptions(keepPurified: savePurified != nil, purify: !noPurify, emptyCaption: emptyCaption))
        // Validate the parameters once, up front, with a clear message.
        try processor.pack.validate(processor.pack.parameters(strength: strength, steps: steps, guidance: guidance, eta: eta, ensemble: ensemble, seed: 0))
        if let savePurified { try FileManager.default.createDirectory(atPath: savePurified, withIntermediateDirectories: true) }
        let files = InputFiles.expand(paths)
        if !json { print("file\tlabel\tconfidence\tconsistency\tcaption") }
        let progress = ProgressLine(total: files.count)
        var done = 0
        for start in stride(from: 0, to: files.count, by: batch) {
            let group = files[start..<min(files.count, start + batch)]
            var items: [(String, JobItem)] = []
            for f in group {
                let params = loaded.parameters(
                    strength: strength, steps: steps, guidance: guidance, eta: eta, ensemble: ensemble,
                    seed: seed ?? UInt64.random(in: 0..<(1 << 31)))
                let bytes = FileManager.default.contents(atPath: f).map { [UInt8]($0) } ?? []
                let item = JobItem(
                    id: URL(fileURLWithPath: f).lastPathComponent, input: bytes, format: nil, parameters: params,
                    inputSHA256: SHA256.hex(bytes))
                if bytes.isEmpty { item.failure = .rejected(.unreadable, "cannot read \(f) (missing or empty)") }
                items.append((f, item))
            }
            _ = processor.run(items.map(\.1))
            for (f, item) in items {
                if let dir = savePurified, let png = item.purifiedPNG {
                    let name = URL(fileURLWithPath: f).deletingPathExtension().lastPathComponent + ".purified.png"
                    try Data(png).write(to: URL(fileURLWithPath: dir).appendingPathComponent(name))
                }
                var o = item.result(stages: processor.stages).jsonObject
                o["file"] = f
                o.removeValue(forKey: "id")
                if json {
                    Output.jsonLine(o)
                } else if let fail = item.failure {
                    Output.line("\(f)\t\(fail.status.rawValue): \(fail.reason.rawValue)\t-\t-\t\(fail.message)")
                } else {
                    Output.line(
                        "\(f)\t\(item.prediction?.label ?? "-")\t\(String(format: "%.4f", item.prediction?.confidence ?? 0))\t\(item.consistency?.rawValue ?? "-")\t\(item.caption?.text ?? "")"
                    )
                }
            }
            done += group.count
            progress.update(done)
        }
    }
}
