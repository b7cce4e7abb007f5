// Generation parameters, after transformers' GenerationConfig (generation/configuration_utils.py),
// limited to what BLIP captioning uses: greedy or beam search with min/max length, length penalty,
// early stopping and repetition penalty. Settings this port does not implement (sampling, n-gram
// blocking, beam groups, several returned sequences) are load errors rather than silently ignored.
import Foundation

/// Beam search stopping rule (GenerationConfig.early_stopping: False, True or "never").
public enum EarlyStopping: Sendable, Equatable, Codable {
    /// False: stop when the best running beam, length-normalised at the current length, cannot beat
    /// the worst finished hypothesis.
    case heuristic
    /// True: stop as soon as num_beams hypotheses are finished.
    case whenEnoughHypotheses
    /// "never": like `heuristic` but normalises at max_length (the canonical beam search bound).
    case never

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let flag = try? c.decode(Bool.self) {
            self = flag ? .whenEnoughHypotheses : .heuristic
        } else if let s = try? c.decode(String.self), s == "never" {
            self = .never
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected true, false or \"never\"")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .heuristic: try c.encode(false)
        case .whenEnoughHypotheses: try c.encode(true)
        case .never: try c.encode("never")
        }
    }
}

/// The generation keys of generation_config.json (or the legacy ones in config.json's text_config);
/// nil where the file does not set them.
public struct BlipGenerationConfig: Codable, Sendable, Equatable {
    public var maxLength: Int?
    public var maxNewTokens: Int?
    public var minLength: Int?
    public var numBeams: Int?
    public var lengthPenalty: Double?
    public var earlyStopping: EarlyStopping?
    public var repetitionPenalty: Float?
    // Read only to refuse them when set to anything but the default.
    var doSample: Bool?
    var numBeamGroups: Int?
    var noRepeatNgramSize: Int?
    var numReturnSequences: Int?

    enum CodingKeys: String, CodingKey {
        case maxLength = "max_length", maxNewTokens = "max_new_tokens", minLength = "min_length"
        case numBeams = "num_beams", lengthPenalty = "length_penalty", earlyStopping = "early_stopping"
        case repetitionPenalty = "repetition_penalty", doSample = "do_sample", numBeamGroups = "num_beam_groups"
        case noRepeatNgramSize = "no_repeat_ngram_size", numReturnSequences = "num_return_sequences"
    }

    public init() {}

    /// generation_config.json in `folder`, or nil when the folder has none.
    static func load(folder: String) throws -> BlipGenerationConfig? {
        let path = (folder as NSString).appendingPathComponent("generation_config.json")
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let config: BlipGenerationConfig
        do {
            config = try JSONDecoder().decode(BlipGenerationConfig.self, from: data)
        } catch {
            throw ModelError.badConfig(path, describe(error))
        }
        try config.checkSupported(path: path, section: nil)
        return config
    }

    func checkSupported(path: String, section: String?) throws {
        let at = section.map { "\($0): " } ?? ""
        if doSample == true { throw ModelError.badConfig(path, "\(at)do_sample is not supported (greedy and beam search only)") }
        if let g = numBeamGroups, g > 1 { throw ModelError.badConfig(path, "\(at)num_beam_groups \(g) is not supported") }
        if let n = noRepeatNgramSize, n > 0 { throw ModelError.badConfig(path, "\(at)no_repeat_ngram_size \(n) is not supported") }
        if let n = numReturnSequences, n > 1 { throw ModelError.badConfig(path, "\(at)num_return_sequences \(n) is not supported") }
        if let b = numBeams, b < 1 { throw ModelError.badConfig(path, "\(at)num_beams must be at least 1, got \(b)") }
        if let r = repetitionPenalty, !(r > 0) { throw ModelError.badConfig(path, "\(at)repetition_penalty must be > 0, got \(r)") }
    }

    /// `self` with the keys it leaves unset taken from `fallback`.
    func filling(from fallback: BlipGenerationConfig) -> BlipGenerationConfig {
        var m = self
        m.maxLength = maxLength ?? fallback.maxLength
        m.maxNewTokens = maxNewTokens ?? fallback.maxNewTokens
        m.minLength = minLength ?? fallback.minLength
        m.numBeams = numBeams ?? fallback.numBeams
        m.lengthPenalty = lengthPenalty ?? fallback.lengthPenalty
        m.earlyStopping = earlyStopping ?? fallback.earlyStopping
        m.repetitionPenalty = repetitionPenalty ?? fallback.repetitionPenalty
        return m
    }
}

/// Per-call generation settings; nil fields fall back to the folder's defaults
/// (generation_config.json, then config.json's text_config, then transformers' defaults).
public struct GenerationOptions: Sendable, Equatable {
    public var numBeams: Int?
    /// Total length including [DEC] and the prompt, as transformers counts it.
    public var maxLength: Int?
    /// Overrides maxLength: prompt length + maxNewTokens.
    public var maxNewTokens: Int?
    /// Total length (including [DEC] and the prompt) before [SEP] may end the caption.
    public var minLength: Int?
    public var lengthPenalty: Double?
    public var earlyStopping: EarlyStopping?
    public var repetitionPenalty: Float?
    /// Text the caption must start with ("a picture of"); it is removed from `Caption.text`.
    public var prompt: String?

    public init(
        numBeams: Int? = nil, maxLength: Int? = nil, maxNewTokens: Int? = nil, minLength: Int? = nil,
        lengthPenalty: Double? = nil, earlyStopping: EarlyStopping? = nil, repetitionPenalty: Float? = nil,
        prompt: String? = nil
    ) {
        self.numBeams = numBeams
        self.maxLength = maxLength
        self.maxNewTokens = maxNewTokens
        self.minLength = minLength
        self.lengthPenalty = lengthPenalty
        self.earlyStopping = earlyStopping
        self.repetitionPenalty = repetitionPenalty
        self.prompt = prompt
    }

    var asConfig: BlipGenerationConfig {
        var c = BlipGenerationConfig()
        c.maxLength = maxLength
        c.maxNewTokens = maxNewTokens
        c.minLength = minLength
        c.numBeams = numBeams
        c.lengthPenalty = lengthPenalty
        c.earlyStopping = earlyStopping
        c.repetitionPenalty = repetitionPenalty
        return c
    }
}

/// Fully resolved settings for one generate() call.
struct GenerationSettings: Equatable {
    var numBeams: Int
    var maxLength: Int
    var minLength: Int
    var lengthPenalty: Double
    var earlyStopping: EarlyStopping
    var repetitionPenalty: Float
    var bosTokenId: Int
    var eosTokenId: Int
    var padTokenId: Int

    /// transformers' _prepare_generated_length: max_new_tokens wins; a max_length that was not passed
    /// explicitly and equals the library default 20 becomes 20 + prompt length (capped at
    /// max_position_embeddings), so the default always allows 20 new tokens.
    init(explicit: BlipGenerationConfig, defaults: BlipGenerationConfig, text: BlipTextConfig, promptLength: Int) throws {
        let merged = explicit.filling(from: defaults)
        numBeams = merged.numBeams ?? 1
        if let newTokens = merged.maxNewTokens {
            maxLength = newTokens + promptLength
        } else if let explicitMax = explicit.maxLength {
            maxLength = explicitMax
        } else {
            let fromConfig = defaults.maxLength ?? 20
            maxLength = fromConfig == 20 ? min(20 + promptLength, text.maxPositionEmbeddings) : fromConfig
        }
        minLength = merged.minLength ?? 0
        lengthPenalty = merged.lengthPenalty ?? 1
        earlyStopping = merged.earlyStopping ?? .heuristic
        repetitionPenalty = merged.repetitionPenalty ?? 1
        // BlipForConditionalGeneration.generate passes eos = sep_token_id and pad = pad_token_id.
        bosTokenId = text.bosTokenId
        eosTokenId = text.sepTokenId
        padTokenId = text.padTokenId
        guard numBeams >= 1 else { throw ModelError.badInput("num_beams must be at least 1, got \(numBeams)") }
        guard maxLength > promptLength else {
            throw ModelError.badInput("max_length \(maxLength) leaves no room after the \(promptLength)-token prompt")
        }
        // The last step feeds position max_length − 2.
        guard maxLength - 1 <= text.maxPositionEmbeddings else {
            throw ModelError.badInput("max_length \(maxLength) needs more than max_position_embeddings \(text.maxPositionEmbeddings) positions")
        }
        guard repetitionPenalty > 0 else { throw ModelError.badInput("repetition_penalty must be > 0, got \(repetitionPenalty)") }
    }
}
