// The LGAP purifier: caption-guided img2img denoising, step for step as diffusers'
// StableDiffusionImg2ImgPipeline runs it (pixel-space packs skip the VAE):
// image in [0,1] → model size → [−1,1] → (VAE encode, posterior sample × scaling) → noise to the
// start step → DDIM loop with classifier-free guidance against the empty caption → (VAE decode) →
// [0,1] → original size. An ensemble of K runs is one batch of K with one generator, exactly like
// num_images_per_prompt=K with torch.Generator().manual_seed(seed).
import Foundation
import Tensor

public struct PurificationParameters: Codable, Sendable, Equatable {
    /// Fraction of the diffusion trajectory to noise to (diffusers' strength), in (0, 1].
    public var strength: Double
    /// DDIM steps of the full schedule; int(steps × strength) of them run.
    public var steps: Int
    /// Classifier-free guidance scale; ≤ 1 runs the captioned branch only.
    public var guidance: Double
    /// DDIM eta (0: deterministic after the initial noise).
    public var eta: Double
    /// Seed of the torch-compatible generator.
    public var seed: UInt64
    /// Independent purifications per image (the classifier votes).
    public var ensemble: Int

    public init(strength: Double, steps: Int, guidance: Double, eta: Double = 0, seed: UInt64, ensemble: Int = 1) {
        self.strength = strength
        self.steps = steps
        self.guidance = guidance
        self.eta = eta
        self.seed = seed
        self.ensemble = ensemble
    }

    /// Refuses values the pipeline cannot run, with the reason.
    public func validate() throws {
        guard strength.isFinite, strength > 0, strength <= 1 else { throw ModelError.badInput("strength must be in (0, 1], got \(strength)") }
        guard steps >= 1, steps <= 1000 else { throw ModelError.badInput("steps must be in 1…1000, got \(steps)") }
        guard Int(Double(steps) * strength) >= 1 else {
            throw ModelError.badInput("strength \(strength) × steps \(steps) runs no denoising step (need int(steps × strength) ≥ 1)")
        }
        guard guidance.isFinite, guidance >= 0, guidance <= 100 else {
            throw ModelError.badInput("guidance must be a finite number in [0, 100], got \(guidance)")
        }
        guard eta.isFinite, eta >= 0, eta <= 1 else { throw ModelError.badInput("eta must be in [0, 1], got \(eta)") }
        guard ensemble >= 1, ensemble <= 16 else { throw ModelError.badInput("ensemble must be in 1…16, got \(ensemble)") }
    }

    /// Whether two jobs can share one denoising loop: everything but the seed is equal.
    public func sameSchedule(as other: PurificationParameters) -> Bool {
        var a = self, b = other
        a.seed = 0; b.seed = 0
        return a == b
    }
}

public final class DiffusionPurifier: Sendable {
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let unet: UNet2DConditionModel
    public let scheduler: DDIMScheduler
    public let vae: AutoencoderKL?
    /// The size the model works at (height, width); nil: the image's own size.
    public let modelSize: (Int, Int)?
    public let resizeMode: InterpolationMode
    /// Where the start noise goes (pack.json "noise_schedule").
    public let noiseSchedule: NoiseSchedule
    let emptyContext: Tensor

    /// Loads a diffusers-layout pack: text_encoder/, tokenizer/, unet/, scheduler/ and, for latent
    /// models, vae/.
    public init(
        pack: String, modelSize: (Int, Int)?, resizeMode: InterpolationMode = .bicubic, noiseSchedule: NoiseSchedule = .diffusers
    ) throws {
        tokenizer = try CLIPTokenizer(folder: pack + "/tokenizer")
        textEncoder = try CLIPTextModel(folder: pack + "/text_encoder")
        unet = try UNet2DConditionModel(folder: pack + "/unet")
        scheduler = try DDIMScheduler(folder: pack + "/scheduler")
        vae = FileManager.default.fileExists(atPath: pack + "/vae/config.json") ? try AutoencoderKL(folder: pack + "/vae") : nil
        self.modelSize = modelSize
        self.resizeMode = resizeMode
        self.noiseSchedule = noiseSchedule
        let latentChannels = vae?.config.latentChannels ?? 3
        guard unet.config.inChannels == latentChannels, unet.config.outChannels == latentChannels else {
            throw ModelError.badConfig(
                pack + "/unet/config.json",
                "UNet has \(unet.config.inChannels)→\(unet.config.outChannels) channels but the \(vae == nil ? "image" : "latent") space has \(latentChannels)")
        }
        guard unet.config.crossAttentionDim.value(0) == textEncoder.config.hiddenSize else {
            throw ModelError.badConfig(
                pack + "/unet/config.json", "cross_attention_dim does not match the text encoder's hidden size \(textEncoder.config.hiddenSize)")
        }
        emptyContext = try textEncoder([tokenizer("")])
    }

    /// Refuses parameters this purifier cannot run: the general limits, more DDIM steps than its
    /// scheduler has training timesteps, and (CompVis noise schedule) a start noise past the schedule.
    public func validate(_ p: PurificationParameters) throws {
        try p.validate()
        if let why = scheduler.refusal(steps: p.steps) { throw ModelError.badInput(why) }
        _ = try startNoiseTimestep(p)
    }

    /// The timestep the start noise is added at (see NoiseSchedule).
    func startNoiseTimestep(_ p: PurificationParameters) throws -> Int {
        let first = scheduler.img2imgTimesteps(steps: p.steps, strength: p.strength)[0]
        let n = scheduler.config.numTrainTimesteps
        guard let t = noiseSchedule.noiseTimestep(firstStep: first, steps: p.steps, trainTimesteps: n) else {
            throw ModelError.badInput(
                "noise_schedule compvis noises one DDIM stride above the first step (t = \(first)), past the schedule's \(n) training timesteps: use strength < 1"
            )
        }
        return t
    }

    /// Text-encoder states [1, 77, D] for a caption.
    public func encode(caption: String) throws -> Tensor { try textEncoder([tokenizer(caption)]) }

    /// image: [1, 3, H, W] in [0, 1] → K purified images [K, 3, H, W] in [0, 1]. `progress` is called
    /// after every denoising step.
    public func purify(
        _ image: Tensor, caption: String, parameters p: PurificationParameters,
        progress: (@Sendable () -> Void)? = nil
    ) throws -> Tensor {
        try purify([PurificationRequest(image: image, caption: caption, parameters: p)], progress: progress)[0]
    }

    /// Purifies several images in one denoising loop: every UNet call carries all of them, so small
    /// models get GEMMs big enough to use the machine. Each image keeps its own generator (seeded by its
    /// own parameters), so each result is the one `purify(_:caption:parameters:)` gives it alone. The
    /// requests must share the schedule (strength, steps, guidance, eta, ensemble) and image size;
    /// `canBatch` says whether two do.
    public func purify(_ requests: [PurificationRequest], progress: (@Sendable () -> Void)? = nil) throws -> [Tensor] {
        let outputs = try purifyAtModelSize(requests, progress: progress)
        return zip(requests, outputs).map { r, o in restore(o, height: r.image.shape[2], width: r.image.shape[3]) }
    }

    /// Purified copies [K, 3, H, W] resized back to an image's own size (what `purify` returns), one
    /// copy or all at once: the service restores one copy at a time, so a large input never holds K
    /// full-size float copies.
    public func restore(_ o: Tensor, height h: Int, width w: Int) -> Tensor {
        (o.shape[2], o.shape[3]) == (h, w) ? o : clamp(interpolate(o, height: h, width: w, mode: resizeMode), 0, 1)
    }

    /// As `purify`, but each result stays at the model's working size ([K, 3, mh, mw] in [0, 1]).
    public func purifyAtModelSize(_ requests: [PurificationRequest], progress: (@Sendable () -> Void)? = nil) throws -> [Tensor] {
        guard let first = requests.first else { return [] }
        for r in requests {
            try validate(r.parameters)
            guard r.image.rank == 4, r.image.shape[0] == 1, r.image.shape[1] == 3 else {
                throw ModelError.badInput("purifier needs one RGB image [1, 3, H, W], got \(r.image.shape)")
            }
            guard Self.canBatch(r, first) else {
                throw ModelError.badInput("a purification batch needs one schedule and image size; use canBatch to group requests")
            }
        }
        let p = first.parameters
        let (h, w) = (first.image.shape[2], first.image.shape[3])
        let (mh, mw) = modelSize ?? (h, w)
        let f = vae?.scaleFactor ?? 1
        guard mh % (f * 8) == 0 || vae == nil, mh > 0, mw > 0 else {
            throw ModelError.badInput("model size \(mh)×\(mw) must be a multiple of \(f * 8)")
        }
        let k = p.ensemble
        let timesteps = scheduler.img2imgTimesteps(steps: p.steps, strength: p.strength)
        let noiseTimestep = try startNoiseTimestep(p)
        var generators = requests.map { TorchGenerator(seed: $0.parameters.seed) }
        // Per image, in the generator order of the single-image pipeline: [0,1] → model size → [−1,1]
        // → (one posterior sample) → repeated for the ensemble → start noise → noised to the first step.
        var starts: [Tensor] = []
        for (i, r) in requests.enumerated() {
            var x = (mh, mw) == (h, w) ? r.image : interpolate(r.image, height: mh, width: mw, mode: resizeMode)
            x = x * Float(2) + Float(-1)
            var initial: Tensor
            if let vae {
                let posterior = vae.encode(x)
                let z = posterior.mean + posterior.std * generators[i].randn(posterior.mean.shape)
                initial = z * vae.config.scalingFactor
            } else {
                initial = x
            }
            initial = concat(Array(repeating: initial, count: k), axis: 0)
            let noise = generators[i].randn(initial.shape)
            starts.append(scheduler.addNoise(initial, noise: noise, timestep: noiseTimestep))
        }
        var latents = starts.count == 1 ? starts[0] : concat(starts, axis: 0)
        let n = latents.shape[0]
        // Text conditioning: [uncond × n, cond of each image × K] with guidance, the conds alone without.
        let cfg = p.guidance > 1
        var conds: [Tensor] = []
        for r in requests {
            let c = try encode(caption: r.caption)
            conds += Array(repeating: c, count: k)
        }
        let context = concat((cfg ? Array(repeating: emptyContext, count: n) : []) + conds, axis: 0)
        // Denoising loop.
        for t in timesteps {
            let input = cfg ? concat([latents, latents], axis: 0) : latents
            var eps = unet(input, timesteps: Array(repeating: Float(t), count: input.shape[0]), context: context)
            if cfg {
                let parts = chunk(eps, parts: 2, axis: 0)
                eps = parts[0] + (parts[1] - parts[0]) * Float(p.guidance)
            }
            var varianceNoise: Tensor? = nil
            if p.eta > 0 {
                let shape = [k] + Array(latents.shape.dropFirst())
                let parts = generators.indices.map { generators[$0].randn(shape) }
                varianceNoise = parts.count == 1 ? parts[0] : concat(parts, axis: 0)
            }
            latents = scheduler.step(
                modelOutput: eps, timestep: t, sample: latents, steps: p.steps, eta: Float(p.eta),
                varianceNoise: varianceNoise)
            progress?()
        }
        var out = vae.map { $0.decode(latents * (1 / $0.config.scalingFactor)) } ?? latents
        out = clamp(out * Float(0.5) + Float(0.5), 0, 1)
        return requests.indices.map { i in requests.count == 1 ? out : narrow(out, axis: 0, start: i * k, length: k) }
    }

    /// Whether two requests can share one denoising loop (same schedule and image size; seeds and
    /// captions may differ).
    public static func canBatch(_ a: PurificationRequest, _ b: PurificationRequest) -> Bool {
        a.parameters.sameSchedule(as: b.parameters) && a.image.shape == b.image.shape
    }
}

/// One image to purify with its caption and parameters.
public struct PurificationRequest: Sendable {
    public var image: Tensor
    public var caption: String
    public var parameters: PurificationParameters
    public init(image: Tensor, caption: String, parameters: PurificationParameters) {
        self.image = image
        self.caption = caption
        self.parameters = parameters
    }
}
