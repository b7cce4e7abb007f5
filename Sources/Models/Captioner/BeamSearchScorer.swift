// Port of transformers' BeamSearchScorer and BeamHypotheses (generation/beam_search.py) for one image
// (one batch entry): which candidates continue, which close a hypothesis, when the search is done,
// and which hypothesis wins. Hypothesis scores are sum_logprobs / generated_length ** length_penalty
// in double precision (Python floats), with transformers' replacement, tie and stopping rules.
import Foundation

/// A scored continuation: `token` appended to beam `beam`; `score` is the beam's running float32 sum.
struct BeamCandidate: Equatable {
    var score: Float
    var token: Int
    var beam: Int
}

/// BeamSearchScorer restricted to one batch entry.
struct BeamSearchScorer {
    let numBeams: Int
    let eosTokenId: Int
    let promptLength: Int
    let maxLength: Int
    private(set) var hypotheses: BeamHypotheses
    private(set) var isDone = false

    init(numBeams: Int, lengthPenalty: Double, earlyStopping: EarlyStopping, maxLength: Int, eosTokenId: Int, promptLength: Int) {
        self.numBeams = numBeams
        self.eosTokenId = eosTokenId
        self.promptLength = promptLength
        self.maxLength = maxLength
        hypotheses = BeamHypotheses(
            numBeams: numBeams, lengthPenalty: lengthPenalty, earlyStopping: earlyStopping,
            maxLength: maxLength)
    }

    /// process(): `candidates` are the best 2·numBeams continuations over all beams, best first;
    /// `sequences` the current beams. [SEP] among the first numBeams closes a hypothesis (the sequence
    /// without [SEP]); the first numBeams other candidates continue.
    mutating func process(_ candidates: [BeamCandidate], sequences: [[Int]]) -> [BeamCandidate] {
        precondition(!isDone, "BeamSearchScorer.process after the search is done")
        let currentLength = sequences[0].count + 1
        var next: [BeamCandidate] = []
        for (rank, c) in candidates.enumerated() {
            if c.token == eosTokenId {
                if rank >= numBeams { continue }
                hypotheses.add(sequences[c.beam], sumLogprobs: Double(c.score), generatedLength: currentLength - promptLength)
            } else {
                next.append(c)
            }
            if next.count == numBeams { break }
        }
        precondition(next.count == numBeams, "beam search: fewer than \(numBeams) candidates besides [SEP]")
        isDone = hypotheses.isDone(
            bestSumLogprobs: Double(candidates[0].score), currentLength: currentLength,
            promptLength: promptLength)
        return next
    }

    /// finalize(): unless done, the running beams join the hypotheses; the best one is returned,
    /// followed by [SEP] when shorter than max_length (where transformers' padded row puts it).
    func finalize(beams: [(ids: [Int], score: Float)]) -> GeneratedSequence {
        var final = hypotheses
        if !isDone {
            for beam in beams {
                final.add(beam.ids, sumLogprobs: Double(beam.score), generatedLength: beam.ids.count - promptLength)
            }
        }
        let best = final.best
        return GeneratedSequence(ids: best.ids.count < maxLength ? best.ids + [eosTokenId] : best.ids, score: Float(best.score))
    }
}

/// BeamHypotheses: the numBeams best finished hypotheses.
struct BeamHypotheses {
    let numBeams: Int
    let lengthPenalty: Double
    let earlyStopping: EarlyStopping
    let maxLength: Int
    /// (score, tokens) in insertion order, as transformers' list (the order decides ties).
    private(set) var beams: [(score: Double, ids: [Int])] = []
    private(set) var worstScore = 1e9

    init(numBeams: Int, lengthPenalty: Double, earlyStopping: EarlyStopping, maxLength: Int) {
        self.numBeams = numBeams
        self.lengthPenalty = lengthPenalty
        self.earlyStopping = earlyStopping
        self.maxLength = maxLength
    }

    mutating func add(_ ids: [Int], sumLogprobs: Double, generatedLength: Int) {
        let score = sumLogprobs / pow(Double(generatedLength), lengthPenalty)
        guard beams.count < numBeams || score > worstScore else { return }
        beams.append((score, ids))
        if beams.count > numBeams {
            // sorted((s, idx)): drop the lowest score (lowest index among equals); the next is the worst.
            let ranked = beams.indices.sorted { (beams[$0].score, $0) < (beams[$1].score, $1) }
            worstScore = beams[ranked[1]].score
            beams.remove(at: ranked[0])
        } else {
            worstScore = min(score, worstScore)
        }
    }

    /// Whether no running beam can still beat the worst kept hypothesis.
    func isDone(bestSumLogprobs: Double, currentLength: Int, promptLength: Int) -> Bool {
        guard beams.count >= numBeams else { return false }
        switch earlyStopping {
        case .whenEnoughHypotheses:
            return true
        case .heuristic:
            return worstScore >= bestSumLogprobs / pow(Double(currentLength - promptLength), lengthPenalty)
        case .never:
            let length = lengthPenalty > 0 ? maxLength - promptLength : currentLength - promptLength
            return worstScore >= bestSumLogprobs / pow(Double(length), lengthPenalty)
        }
    }

    /// The best hypothesis: the last of equal top scores, as sorted(...).pop() picks.
    var best: (score: Double, ids: [Int]) {
        precondition(!beams.isEmpty, "beam search finished without hypotheses")
        var pick = 0
        for i in beams.indices where beams[i].score >= beams[pick].score { pick = i }
        return beams[pick]
    }
}
