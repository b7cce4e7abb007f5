// lgapctl replay: re-runs a stored job offline with its stored input, parameters and seed, and
// reports whether the purified image hash and the label come out the same.
import ArgumentParser
import Foundation
import Models
import Provenance
import Stages
import Tensor

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-run a stored job and compare with what was recorded.")

    @Argument var id: String
    @Option(help: "Database (default: lgapd's configured one).") var db: String?
    @Option(help: "Pack folder (default: the one the job's run used).") var pack: String?
    @Option(help: "Engine threads.") var threads = 2
    @Flag(help: "JSON instead of text.") var json = false

    func run() throws {
        Engine.threads = threads
        let store = try JobStore(readingAt: DatabaseLocator.path(db))
        guard let row = try store.job(id) else { throw ValidationError("no job with id \(id)") }
        guard row.status == "done" || row.status == "failed" || row.status == "accepted" || row.status == "processing",
              let input = try store.input(of: id), let strength = row.strength, let steps = row.steps, let guidance = row.guidance,
              let seed = row.seed else {
            throw ValidationError("job \(id) (\(row.status)) has no stored input and parameters to replay")
        }
        let runPack = try store.runs(limit: 1000).first { $0.id == (row.finishedRunId ?? row.runId) }?.pack
        let packDir = pack ?? runPack ?? PackLocator.defaultPack()
        let loaded = try Pack(folder: packDir)
        let processor = JobProcessor(pack: loaded, options: ProcessorOptions(keepPurified: false))
        let params = PurificationParameters(strength: strength, steps: steps, guidance: guidance, eta: row.eta ?? 0,
                                            seed: UInt64(bitPattern: seed), ensemble: row.ensemble ?? 1)
        let item = JobItem(id: id, input: input, format: row.inputFormat ?? "auto", parameters: params, receivedAt: Date())
        _ = processor.run([item])
        let hashMatch = item.purifiedSHA256 == row.purifiedSha256
        let labelMatch = item.prediction?.label == row.predLabel
        let captionMatch = item.caption?.text == row.caption
        let result: [String: Any] = [
            "id": id, "pack": packDir, "seed": seed,
            "recorded": ["purified_sha256": orNull(row.purifiedSha256), "label": orNull(row.predLabel), "caption": orNull(row.caption)],
            "replayed": ["purified_sha256": orNull(item.purifiedSHA256), "label": orNull(item.prediction?.label),
                         "caption": orNull(item.caption?.text), "error": orNull(item.failure?.message)],
            "purified_hash_matches": hashMatch, "label_matches": labelMatch, "caption_matches": captionMatch,
        ]
        if json { Output.jsonLine(result) } else {
            print("job \(id) replayed with seed \(seed) on \(packDir)")
            print("  caption      \(captionMatch ? "same" : "DIFFERENT"): \(row.caption ?? "-") → \(item.caption?.text ?? "-")")
            print("  purified     \(hashMatch ? "same" : "DIFFERENT"): \(row.purifiedSha256 ?? "-") → \(item.purifiedSHA256 ?? "-")")
            print("  label        \(labelMatch ? "same" : "DIFFERENT"): \(row.predLabel ?? "-") → \(item.prediction?.label ?? "-")")
        }
        if !(hashMatch && labelMatch) { throw ExitCode(1) }
    }
}

/// A JSON value: the string, or null.
func orNull(_ s: String?) -> Any { s.map { $0 as Any } ?? NSNull() }
