// Port of transformers BlipForConditionalGeneration (modeling_blip.py): the text half,
// BlipTextLMHeadModel (modeling_blip_text.py) — BERT embeddings (word + absolute position, LayerNorm,
// no token types), post-norm layers of causal self-attention, cross-attention to the image tokens and
// a feed-forward block, and the `cls.predictions` LM head. Decoding keeps a self-attention KV cache;
// the cross-attention keys/values of each image are computed once and shared by all its beams.
import NN
import Tensor

/// Keys and values of one attention layer, each [rows, length, C].
struct KeyValue {
    var keys: Tensor
    var values: Tensor
}

/// BlipTextEmbeddings: word + position embeddings → LayerNorm.
struct BlipTextEmbeddings {
    let wordEmbeddings: Embedding
    let positionEmbeddings: Embedding
    let layerNorm: LayerNorm

    init(_ w: WeightScope, config: BlipTextConfig) throws {
        wordEmbeddings = try Embedding(w.scope("word_embeddings"), count: config.vocabSize, dim: config.hiddenSize)
        positionEmbeddings = try Embedding(
            w.scope("position_embeddings"), count: config.maxPositionEmbeddings,
            dim: config.hiddenSize)
        layerNorm = try LayerNorm(w.scope("LayerNorm"), dim: config.hiddenSize, eps: config.layerNormEps)
        // A non-persistent buffer that older exports still carry.
        w.store.ignore { $0 == w.key("position_ids") }
    }

    /// ids: rows × length, row-major; positions start at `start` (the cached length) → [rows, length, C]
    func callAsFunction(_ ids: [Int], rows: Int, start: Int) -> Tensor {
        let length = ids.count / rows
        let words = wordEmbeddings(ids).reshaped([rows, length, wordEmbeddings.dim])
        let positions = positionEmbeddings(Array(start..<(start + length))).reshaped([1, length, wordEmbeddings.dim])
        return layerNorm(words + positions)
    }
}

/// BlipTextAttention: `self` (query/key/value) and `output` (dense, then LayerNorm of the residual sum).
/// Keys/values come from the text (self-attention) or from the image tokens (cross-attention).
struct BlipTextAttention {
    let query: Linear
    let key: Linear
    let value: Linear
    let outputDense: Linear
    let outputNorm: LayerNorm
    let heads: Int

    init(_ w: WeightScope, config: BlipTextConfig, keyInput: Int) throws {
        let c = config.hiddenSize
        let s = w.scope("self"), o = w.scope("output")
        query = try Linear(s.scope("query"), inFeatures: c, outFeatures: c)
        key = try Linear(s.scope("key"), inFeatures: keyInput, outFeatures: c)
        value = try Linear(s.scope("value"), inFeatures: keyInput, outFeatures: c)
        outputDense = try Linear(o.scope("dense"), inFeatures: c, outFeatures: c)
        outputNorm = try LayerNorm(o.scope("LayerNorm"), dim: c, eps: config.layerNormEps)
        heads = config.numAttentionHeads
    }

    /// Keys and values of `source` [N, L, keyInput].
    func project(_ source: Tensor) -> KeyValue { KeyValue(keys: key(source), values: value(source)) }

    /// Causal self-attention. x [R, L, C]; `past` holds earlier positions of the rows `parents` name
    /// (one past row per x row). Returns the output and the grown cache [R, T + L, C].
    func selfAttention(_ x: Tensor, past: KeyValue?, parents: [Int]) -> (Tensor, KeyValue) {
        let fresh = project(x)
        let kv =
            past.map {
                KeyValue(
                    keys: gatherAppend($0.keys, rows: parents, fresh.keys),
                    values: gatherAppend($0.values, rows: parents, fresh.values))
            } ?? fresh
        let context = attention(q: query(x), k: kv.keys, v: kv.values, heads: heads, causal: true)
        return (outputNorm(outputDense(context) + x), kv)
    }

    /// Cross-attention of x [N·g, L, C] to `memory` [N, Lm, C]: the g consecutive rows of each memory
    /// row (its beams) attend to it together, as one [N, g·L, C] query block (no mask, all tokens).
    func crossAttention(_ x: Tensor, memory: KeyValue) -> Tensor {
        let r = x.shape[0], l = x.shape[1], c = x.shape[2], n = memory.keys.shape[0]
        precondition(r % n == 0, "cross-attention: \(r) rows for \(n) images")
        let q = query(x).reshaped([n, (r / n) * l, c])  // [N, g·L, C]
        let context = attention(q: q, k: memory.keys, v: memory.values, heads: heads).reshaped([r, l, c])
        return outputNorm(outputDense(context) + x)
    }
}

/// BlipTextLayer: self-attention → cross-attention → intermediate (dense, act) → output (dense, LayerNorm).
struct BlipTextLayer {
    let attention: BlipTextAttention
    let crossAttention: BlipTextAttention
    let intermediate: Linear
    let output: Linear
    let outputNorm: LayerNorm
    let activation: Activation

    init(_ w: WeightScope, config: BlipTextConfig, activation: Activation) throws {
        attention = try BlipTextAttention(w.scope("attention"), config: config, keyInput: config.hiddenSize)
        crossAttention = try BlipTextAttention(w.scope("crossattention"), config: config, keyInput: config.encoderHiddenSize)
        intermediate = try Linear(
            w.scope("intermediate").scope("dense"), inFeatures: config.hiddenSize,
            outFeatures: config.intermediateSize)
        output = try Linear(
            w.scope("output").scope("dense"), inFeatures: config.intermediateSize,
            outFeatures: config.hiddenSize)
        outputNorm = try LayerNorm(w.scope("output").scope("LayerNorm"), dim: config.hiddenSize, eps: config.layerNormEps)
        self.activation = activation
    }

    func callAsFunction(_ x: Tensor, past: KeyValue?, parents: [Int], memory: KeyValue) -> (Tensor, KeyValue) {
        // self-attention
        let (h, kv) = attention.selfAttention(x, past: past, parents: parents)
        // cross-attention
        let a = crossAttention.crossAttention(h, memory: memory)
        // feed-forward
        var f = intermediate(a)
        activateInPlace(&f, activation)
        return (outputNorm(output(f) + a), kv)
    }
}

/// cls.predictions: transform (dense, act, LayerNorm), then decoder with its own bias.
struct BlipTextLMHead {
    let dense: Linear
    let layerNorm: LayerNorm
    let decoder: Linear
    let activation: Activation

    /// `wordEmbeddings` stands in for decoder.weight when the checkpoint ties them (key absent).
    init(_ w: WeightScope, config: BlipTextConfig, activation: Activation, wordEmbeddings: Tensor) throws {
        let c = config.hiddenSize, v = config.vocabSize
        dense = try Linear(w.scope("transform").scope("dense"), inFeatures: c, outFeatures: c)
        layerNorm = try LayerNorm(w.scope("transform").scope("LayerNorm"), dim: c, eps: config.layerNormEps)
        let weight = try w.scope("decoder").optionalTensor("weight", shape: [v, c]) ?? wordEmbeddings
        // transformers ties decoder.bias to `bias`; exports may carry either name or both.
        let bias: Tensor
        if w.contains("bias") {
            bias = try w.tensor("bias", shape: [v])
            w.store.ignore { $0 == w.scope("decoder").key("bias") }
        } else {
            bias = try w.scope("decoder").tensor("bias", shape: [v])
        }
        decoder = Linear(weight: weight, bias: bias)
        self.activation = activation
    }

    /// [..., C] → [..., V]
    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = dense(x)
        activateInPlace(&h, activation)
        return decoder(layerNorm(h))
    }
}

/// Self-attention cache of a decoding run: per layer [rows, length, C].
struct DecoderCache {
    var layers: [KeyValue]
    var length: Int { layers.first?.keys.shape[1] ?? 0 }
}

/// BlipTextLMHeadModel under `text_decoder` (bert + cls).
public struct BlipTextDecoder: Sendable {
    let embeddings: BlipTextEmbeddings
    let layers: [BlipTextLayer]
    let head: BlipTextLMHead
    public let config: BlipTextConfig

    public init(_ w: WeightScope, config: BlipTextConfig) throws {
        guard let act = Activation(configName: config.hiddenAct) else {
            throw ModelError.badInput("text_config: unsupported hidden_act '\(config.hiddenAct)'")
        }
        self.config = config
        let bert = w.scope("bert")
        embeddings = try BlipTextEmbeddings(bert.scope("embeddings"), config: config)
        let encoder = bert.scope("encoder").scope("layer")
        layers = try (0..<config.numHiddenLayers).map { try BlipTextLayer(encoder.scope($0), config: config, activation: act) }
        head = try BlipTextLMHead(
            w.scope("cls").scope("predictions"), config: config, activation: act,
            wordEmbeddings: embeddings.wordEmbeddings.weight)
    }

    /// Cross-attention keys/values of the image embeddings [N, Lm, Cv], one per layer.
    func memory(_ imageEmbeds: Tensor) -> [KeyValue] {
        layers.map { $0.crossAttention.project(imageEmbeds) }
    }

    /// One decoding step: `ids` (rows × length, row-major) continue the cached rows `parents`
    /// (nil cache: a fresh start). Rows come in groups of rows/N per memory row. Returns the hidden
    /// states [rows, length, C] and the grown cache.
    func step(_ ids: [Int], rows: Int, cache: DecoderCache?, parents: [Int], memory: [KeyValue]) -> (Tensor, DecoderCache) {
        var h = embeddings(ids, rows: rows, start: cache?.length ?? 0)
        var grown: [KeyValue] = []
        for (i, layer) in layers.enumerated() {
            let (out, kv) = layer(h, past: cache?.layers[i], parents: parents, memory: memory[i])
            h = out
            grown.append(kv)
        }
        return (h, DecoderCache(layers: grown))
    }

    /// Next-token logits of the last position of each row: hidden [R, L, C] → [R, V].
    func lastLogits(_ hidden: Tensor) -> Tensor {
        let r = hidden.shape[0], l = hidden.shape[1], c = hidden.shape[2]
        return head(narrow(hidden, axis: 1, start: l - 1, length: 1).reshaped([r, c]))
    }

    /// BlipTextLMHeadModel.forward's logits for whole sequences (no cache): input_ids [B][L] with
    /// image embeddings [B, Lm, Cv] → [B, L, V].
    public func logits(inputIDs: [[Int]], imageEmbeds: Tensor) -> Tensor {
        let rows = inputIDs.count
        precondition(
            rows == imageEmbeds.shape[0] && Set(inputIDs.map(\.count)).count == 1,
            "logits: \(rows) equal-length rows and as many images needed")
        let (h, _) = step(inputIDs.flatMap { $0 }, rows: rows, cache: nil, parents: [], memory: memory(imageEmbeds))
        return head(h)
    }
}

/// x [P, ...] → rows of x picked by `rows` → [rows.count, ...]
func gatherRows(_ x: Tensor, _ rows: [Int]) -> Tensor {
    let inner = x.count / max(x.shape[0], 1)
    var shape = x.shape
    shape[0] = rows.count
    let out = Tensor(uninitialized: shape)
    x.withData { src in
        out.withFreshData { dst in
            for (i, r) in rows.enumerated() {
                precondition(r >= 0 && r < x.shape[0], "gatherRows: row \(r) of \(x.shape[0])")
                (dst + i * inner).update(from: src + r * inner, count: inner)
            }
        }
    }
    return out
}

/// past [P, T, C] rows picked by `rows`, each followed by its row of new [R, L, C] → [R, T + L, C]
/// (transformers' _reorder_cache and the torch.cat of the new keys, in one copy).
func gatherAppend(_ past: Tensor, rows: [Int], _ new: Tensor) -> Tensor {
    let t = past.shape[1], c = past.shape[2], r = new.shape[0], l = new.shape[1]
    precondition(rows.count == r && new.shape[2] == c, "gatherAppend: \(rows.count) rows for \(new.shape), past \(past.shape)")
    let out = Tensor(uninitialized: [r, t + l, c])
    past.withData { pp in
        new.withData { np in
            out.withFreshData { op in
                for (i, p) in rows.enumerated() {
                    precondition(p >= 0 && p < past.shape[0], "gatherAppend: row \(p) of \(past.shape[0])")
                    (op + i * (t + l) * c).update(from: pp + p * t * c, count: t * c)
                    (op + (i * (t + l) + t) * c).update(from: np + i * l * c, count: l * c)
                }
            }
        }
    }
    return out
}
