// Port of transformers' GenerationMixin._sample (greedy) and ._beam_search with BeamSearchScorer and
// BeamHypotheses (generation/utils.py, generation/beam_search.py), and the two logits processors BLIP
// captioning uses, in transformers' order: RepetitionPenaltyLogitsProcessor, then
// MinLengthLogitsProcessor (generation/logits_process.py).
//
// Rows are independent, so each image leaves the batch as soon as it is finished (transformers keeps
// feeding it padding). Images are encoded once; each image's cross-attention keys/values serve all
// its beams; the self-attention cache is reordered by beam parent while the next keys are appended.
import Foundation
import Tensor

/// One generated sequence: transformers' output row without batch padding — [DEC], the prompt, the
/// new tokens and [SEP] when the caption ended before max_length.
struct GeneratedSequence: Equatable {
    var ids: [Int]
    /// Beam search: the hypothesis score (sequences_scores); greedy: nil.
    var score: Float?
}

struct BlipGenerator {
    let decoder: BlipTextDecoder

    /// Generates from `prefix` ([DEC] + prompt tokens) for each image of `imageEmbeds` [N, Lm, Cv].
    func generate(imageEmbeds: Tensor, prefix: [Int], settings: GenerationSettings) -> [GeneratedSequence] {
        settings.numBeams == 1
            ? greedy(imageEmbeds: imageEmbeds, prefix: prefix, settings: settings)
            : beamSearch(imageEmbeds: imageEmbeds, prefix: prefix, settings: settings)
    }

    // MARK: Greedy (_sample with do_sample=False)

    func greedy(imageEmbeds: Tensor, prefix: [Int], settings s: GenerationSettings) -> [GeneratedSequence] {
        let n = imageEmbeds.shape[0]
        var sequences = Array(repeating: prefix, count: n)
        var active = Array(0..<n)  // image of each batch row
        var memory = decoder.memory(imageEmbeds)  // per layer [rows, Lm, C]
        var cache: DecoderCache?
        var parents: [Int] = []
        var stepIDs = Array(Array(repeating: prefix, count: n).joined())
        while !active.isEmpty {
            let (hidden, grown) = decoder.step(stepIDs, rows: active.count, cache: cache, parents: parents, memory: memory)
            var logits = decoder.lastLogits(hidden).scalars  // [rows, V]
            let v = decoder.config.vocabSize
            var survivors: [Int] = []
            stepIDs = []
            for (row, image) in active.enumerated() {
                let next = logits.withUnsafeMutableBufferPointer { buf -> Int in
                    let scores = UnsafeMutableBufferPointer(rebasing: buf[(row * v)..<((row + 1) * v)])
                    applyProcessors(scores, sequence: sequences[image], settings: s)
                    return argmax(scores)
                }
                sequences[image].append(next)
                // Stopping criteria: [SEP] produced, or max_length reached.
                if next != s.eosTokenId && sequences[image].count < s.maxLength {
                    survivors.append(row)
                    stepIDs.append(next)
                }
            }
            if survivors.count < active.count {
                memory = memory.map { KeyValue(keys: gatherRows($0.keys, survivors), values: gatherRows($0.values, survivors)) }
            }
            active = survivors.map { active[$0] }
            parents = survivors
            cache = grown
        }
        return sequences.map { GeneratedSequence(ids: $0, score: nil) }
    }

    // MARK: Beam search (_beam_search)

    func beamSearch(imageEmbeds: Tensor, prefix: [Int], settings s: GenerationSettings) -> [GeneratedSequence] {
        let n = imageEmbeds.shape[0], beams = s.numBeams, v = decoder.config.vocabSize
        var scorers = Array(
            repeating: BeamSearchScorer(
                numBeams: beams, lengthPenalty: s.lengthPenalty,
                earlyStopping: s.earlyStopping, maxLength: s.maxLength,
                eosTokenId: s.eosTokenId, promptLength: prefix.count), count: n)
        var results = [GeneratedSequence?](repeating: nil, count: n)
        let memoryAll = decoder.memory(imageEmbeds)
        var memory = memoryAll
        var active = Array(0..<n)  // images still searching, `beams` consecutive rows each
        // Each beam row: its sequence, running score, and the row of the step batch whose logits it
        // reads. The first step runs one row per image that all its beams read; only beam 0 starts
        // at 0 (the others at −1e9), so the first choices all come from it and differ.
        var rows: [(ids: [Int], score: Float, source: Int)] = (0..<n).flatMap { image in
            (0..<beams).map { b in (prefix, b == 0 ? 0 : -1e9, image) }
        }
        var cache: DecoderCache?
        var parents: [Int] = []
        var stepIDs = Array(Array(repeating: prefix, count: n).joined())
        var stepRows = n
        while true {
            let (hidden, grown) = decoder.step(stepIDs, rows: stepRows, cache: cache, parents: parents, memory: memory)
            let logits = decoder.lastLogits(hidden).scalars  // [stepRows, V]
            var nextRows: [(ids: [Int], score: Float, source: Int)] = []
            var nextActive: [Int] = []
            for (slot, image) in active.enumerated() {
                let beamRows = Array(rows[(slot * beams)..<((slot + 1) * beams)])
                let scores = beamScores(logits, vocab: v, beams: beamRows, settings: s)  // [beams · V]
                let candidates = topK(scores, 2 * beams).map { BeamCandidate(score: scores[$0], token: $0 % v, beam: $0 / v) }
                let next = scorers[image].process(candidates, sequences: beamRows.map(\.ids))
                if scorers[image].isDone {
                    results[image] = scorers[image].finalize(beams: [])
                } else {
                    nextRows += next.map { (beamRows[$0.beam].ids + [$0.token], $0.score, slot * beams + $0.beam) }
                    nextActive.append(image)
                }
            }
            // Stop when every image is done or the sequences reached max_length; the running beams of
            // unfinished images join their hypotheses.
            if nextActive.isEmpty || rows[0].ids.count + 1 >= s.maxLength {
                for (k, image) in nextActive.enumerated() {
                    let running = nextRows[(k * beams)..<((k + 1) * beams)].map { (ids: $0.ids, score: $0.score) }
                    results[image] = scorers[image].finalize(beams: running)
                }
                break
            }
            // Next step: each new beam continues its parent's cache row (_reorder_cache), and only the
            // active images' cross-attention keys/values stay.
            parents = nextRows.map { rows[$0.source].source }
            stepIDs = nextRows.map { $0.ids[$0.ids.count - 1] }
            stepRows = nextRows.count
            if nextActive != active {
                memory = memoryAll.map { KeyValue(keys: gatherRows($0.keys, nextActive), values: gatherRows($0.values, nextActive)) }
            }
            rows = nextRows.enumerated().map { (i, row) in (row.ids, row.score, i) }
            active = nextActive
            cache = grown
        }
        return results.enumerated().map { image, result in
            guard let result else { preconditionFailure("beam search ended without a result for image \(image)") }
            return result
        }
    }

    /// Scores of every (beam, token) of one image: processed log-probabilities plus the beam's score,
    /// in float32 as transformers adds them → [beams · V].
    func beamScores(
        _ logits: [Float], vocab v: Int, beams: [(ids: [Int], score: Float, source: Int)],
        settings s: GenerationSettings
    ) -> [Float] {
        var scores = [Float](repeating: 0, count: beams.count * v)
        scores.withUnsafeMutableBufferPointer { buf in
            logits.withUnsafeBufferPointer { src in
                for (b, row) in beams.enumerated() {
                    let out = UnsafeMutableBufferPointer(rebasing: buf[(b * v)..<((b + 1) * v)])
                    logSoftmax(UnsafeBufferPointer(rebasing: src[(row.source * v)..<((row.source + 1) * v)]), into: out)
                    applyProcessors(out, sequence: row.ids, settings: s)
                    for i in 0..<v { out[i] += row.score }
                }
            }
        }
        return scores
    }

    // MARK: Logits processors

    /// RepetitionPenaltyLogitsProcessor then MinLengthLogitsProcessor on one row of scores.
    func applyProcessors(_ scores: UnsafeMutableBufferPointer<Float>, sequence: [Int], settings s: GenerationSettings) {
        if s.repetitionPenalty != 1 {
            // gather → penalise → scatter: each distinct earlier token once.
            for token in Set(sequence) where token >= 0 && token < scores.count {
                let x = scores[token]
                scores[token] = x < 0 ? x * s.repetitionPenalty : x / s.repetitionPenalty
            }
        }
        if sequence.count < s.minLength && s.eosTokenId < scores.count {
            scores[s.eosTokenId] = -.infinity
        }
    }
}

/// torch.argmax: the first index of the maximum.
func argmax(_ x: UnsafeMutableBufferPointer<Float>) -> Int {
    var best = 0
    for i in 1..<x.count where x[i] > x[best] { best = i }
    return best
}

/// log_softmax of one row: x − max − log Σ exp(x − max).
func logSoftmax(_ x: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>) {
    let m = x.max() ?? 0
    var sum = 0.0
    for i in 0..<x.count { sum += Double(expf(x[i] - m)) }
    let logSum = Float(log(sum))
    for i in 0..<x.count { out[i] = (x[i] - m) - logSum }
}

/// Indices of the k largest values, largest first; ties keep the lower index first.
func topK(_ x: [Float], _ k: Int) -> [Int] {
    var best: [Int] = []
    best.reserveCapacity(k + 1)
    for i in 0..<x.count {
        if best.count == k, let last = best.last, !(x[i] > x[last]) { continue }
        var pos = best.count
        while pos > 0 && x[i] > x[best[pos - 1]] { pos -= 1 }
        best.insert(i, at: pos)
        if best.count > k { best.removeLast() }
    }
    return best
}
