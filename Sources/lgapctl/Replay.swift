// lgapctl replay: re-runs a stored job offline with its stored input, parameters and seed, and
// reports whether the caption, the purified image's hash and the label come out the same.
import ArgumentParser
import Foundation
import JobModel
import JobProcessing
import Locations
import Models
import Provenance
import Tensor

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-run a stored job and compare with what was recorded.")

    @Argument var id: String
    @OptionGroup var store: StoreOptions
    @Option(help: "Pack folder (default: the one the job's run used).") var pack: String?
    @Option(help: "Engine threads.") var threads = 2
    @Flag(help: "JSON instead of text.") var json = false

    func run() throws {
        Engine.threads = threads
        let s = try store.openForQueries()
        guard let row = try s.job(id) else { throw ValidationError("no job with id \(id)") }
        guard let input = row.input else { throw ValidationError("job \(id) (\(row.status.rawValue)) has no stored input to replay") }
        let runPack = try s.runs(limit: 100_000).first { $0.id == (row.finishedRunId ?? row.runId) }?.pack
        let packDir = pack ?? runPack ?? Locations.pack
        let loaded = try Pack(folder: packDir)
        let processor = JobProcessor(pack: loaded, options: ProcessorOptions(keepPurified: false))
        let item = JobItem(id: id, input: [UInt8](input), format: row.inputFormat, parameters: row.params, inputSHA256: row.inputSha256)
        _ = processor.run([item])
        let hashMatch = item.purifiedSHA256 == row.purifiedSha256
        let labelMatch = item.prediction?.label == row.predLabel
        let captionMatch = item.caption?.text == row.caption
        let result: [String: Any] = [
            "id": id, "pack": packDir, "seed": row.params.seed,
            "recorded": ["purified_sha256": orNull(row.purifiedSha256), "label": orNull(row.predLabel), "caption": orNull(row.caption)],
            "replayed": [
                "purified_sha256": orNull(item.purifiedSHA256), "label": orNull(item.prediction?.label),
                "caption": orNull(item.caption?.text), "error": orNull(item.failure?.message)
            ],
            "purified_hash_matches": hashMatch, "label_matches": labelMatch, "caption_matches": captionMatch
        ]
        if json {
            Output.jsonLine(result)
        } else {
            print("job \(id) replayed with seed \(row.params.seed) on \(packDir)")
            Output.line("  caption      \(captionMatch ? "same" : "DIFFERENT"): \(row.caption ?? "-") → \(item.caption?.text ?? "-")")
            print("  purified     \(hashMatch ? "same" : "DIFFERENT"): \(row.purifiedSha256 ?? "-") → \(item.purifiedSHA256 ?? "-")")
            Output.line("  label        \(labelMatch ? "same" : "DIFFERENT"): \(row.predLabel ?? "-") → \(item.prediction?.label ?? "-")")
        }
        if !(hashMatch && labelMatch) { throw ExitCode(1) }
    }
}

/// A JSON value: the string, or null.
func orNull(_ s: String?) -> Any { s.map { $0 as Any } ?? NSNull() }
