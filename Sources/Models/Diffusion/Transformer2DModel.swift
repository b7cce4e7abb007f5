// Port of diffusers Transformer2DModel (continuous input), BasicTransformerBlock, Attention
// (AttnProcessor) and FeedForward with GEGLU (models/transformers/transformer_2d.py,
// models/attention.py, models/attention_processor.py).
import NN
import Tensor

/// diffusers Attention for [B, L, C] inputs: to_q/to_k/to_v (optional bias), to_out.0.
struct DiffusersAttention: Sendable {
    let toQ: Linear, toK: Linear, toV: Linear, toOut: Linear
    let heads: Int

    init(_ w: WeightScope, queryDim: Int, contextDim: Int?, heads: Int, headDim: Int, bias: Bool) throws {
        let inner = heads * headDim
        toQ = try Linear(w.scope("to_q"), inFeatures: queryDim, outFeatures: inner, bias: bias)
        toK = try Linear(w.scope("to_k"), inFeatures: contextDim ?? queryDim, outFeatures: inner, bias: bias)
        toV = try Linear(w.scope("to_v"), inFeatures: contextDim ?? queryDim, outFeatures: inner, bias: bias)
        toOut = try Linear(w.scope("to_out.0"), inFeatures: inner, outFeatures: queryDim)
        self.heads = heads
    }

    /// x: [B, L, C], context: [B, S, Cc] (nil: self-attention) → [B, L, C]
    func callAsFunction(_ x: Tensor, context: Tensor? = nil) -> Tensor {
        let ctx = context ?? x
        return toOut(attention(q: toQ(x), k: toK(ctx), v: toV(ctx), heads: heads))
    }
}

/// FeedForward(activation_fn="geglu"): net.0 = GEGLU(proj: dim → 2·inner), net.2 = Linear(inner → dim).
struct GEGLUFeedForward: Sendable {
    let proj: Linear
    let out: Linear

    init(_ w: WeightScope, dim: Int, mult: Int = 4) throws {
        let inner = dim * mult
        proj = try Linear(w.scope("net.0.proj"), inFeatures: dim, outFeatures: inner * 2)
        out = try Linear(w.scope("net.2"), inFeatures: inner, outFeatures: dim)
    }

    /// x: [B, L, dim] → [B, L, dim]; hidden, gate = proj(x).chunk(2); hidden · gelu(gate)
    func callAsFunction(_ x: Tensor) -> Tensor {
        let parts = chunk(proj(x), parts: 2, axis: -1)
        return out(parts[0] * gelu(parts[1]))
    }
}

struct BasicTransformerBlock: Sendable {
    let norm1: LayerNorm, attn1: DiffusersAttention
    let norm2: LayerNorm, attn2: DiffusersAttention
    let norm3: LayerNorm, ff: GEGLUFeedForward

    init(_ w: WeightScope, dim: Int, heads: Int, headDim: Int, crossAttentionDim: Int) throws {
        norm1 = try LayerNorm(w.scope("norm1"), dim: dim, eps: 1e-5)
        attn1 = try DiffusersAttention(w.scope("attn1"), queryDim: dim, contextDim: nil, heads: heads, headDim: headDim, bias: false)
        norm2 = try LayerNorm(w.scope("norm2"), dim: dim, eps: 1e-5)
        attn2 = try DiffusersAttention(w.scope("attn2"), queryDim: dim, contextDim: crossAttentionDim, heads: heads, headDim: headDim, bias: false)
        norm3 = try LayerNorm(w.scope("norm3"), dim: dim, eps: 1e-5)
        ff = try GEGLUFeedForward(w.scope("ff"), dim: dim)
    }

    /// x: [B, HW, C], context: [B, S, D] → [B, HW, C]
    func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
        // self-attention
        var h = x + attn1(norm1(x))
        // cross-attention
        addInPlace(&h, attn2(norm2(h), context: context))
        // feed-forward
        addInPlace(&h, ff(norm3(h)))
        return h
    }
}

struct Transformer2DModel: Sendable {
    let norm: GroupNorm
    let projInConv: Conv2d?, projInLinear: Linear?
    let blocks: [BasicTransformerBlock]
    let projOutConv: Conv2d?, projOutLinear: Linear?

    init(
        _ w: WeightScope, channels: Int, heads: Int, crossAttentionDim: Int, layers: Int, groups: Int,
        linearProjection: Bool
    ) throws {
        let inner = channels
        norm = try GroupNorm(w.scope("norm"), groups: groups, channels: channels, eps: 1e-6)
        if linearProjection {
            projInLinear = try Linear(w.scope("proj_in"), inFeatures: channels, outFeatures: inner)
            projOutLinear = try Linear(w.scope("proj_out"), inFeatures: inner, outFeatures: channels)
            projInConv = nil; projOutConv = nil
        } else {
            projInConv = try Conv2d(w.scope("proj_in"), inChannels: channels, outChannels: inner, kernel: 1)
            projOutConv = try Conv2d(w.scope("proj_out"), inChannels: inner, outChannels: channels, kernel: 1)
            projInLinear = nil; projOutLinear = nil
        }
        blocks = try (0..<layers).map {
            try BasicTransformerBlock(
                w.scope("transformer_blocks").scope($0), dim: inner, heads: heads,
                headDim: inner / heads, crossAttentionDim: crossAttentionDim)
        }
    }

    /// x: [B, C, H, W], context: [B, S, D] → [B, C, H, W] (with the residual)
    func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
        let (b, c, hh, ww) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var h = norm(x)
        if let projInConv { h = projInConv(h) }
        h = permute(h, [0, 2, 3, 1]).reshaped([b, hh * ww, c])  // [B, HW, C]
        if let projInLinear { h = projInLinear(h) }
        for block in blocks { h = block(h, context: context) }
        if let projOutLinear { h = projOutLinear(h) }
        h = permute(h.reshaped([b, hh, ww, c]), [0, 3, 1, 2])  // [B, C, H, W]
        if let projOutConv { h = projOutConv(h) }
        addInPlace(&h, x)
        return h
    }
}
