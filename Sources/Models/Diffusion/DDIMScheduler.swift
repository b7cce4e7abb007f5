// Port of diffusers DDIMScheduler (schedulers/scheduling_ddim.py) from scheduler_config.json:
// DDPM betas (linear, scaled_linear, squaredcos_cap_v2) and their cumulative products, inference
// timesteps with the config's spacing and offset, the DDIM update (eta ≥ 0) for epsilon / v / sample
// prediction, add_noise, and the img2img start step from a strength.
import Foundation
import Tensor

public struct SchedulerConfig: Codable, Sendable {
    public var numTrainTimesteps = 1000
    public var betaStart: Double = 0.0001
    public var betaEnd: Double = 0.02
    public var betaSchedule = "linear"
    public var clipSample = true
    public var clipSampleRange: Float = 1
    public var setAlphaToOne = true
    public var stepsOffset = 0
    public var predictionType = "epsilon"
    public var timestepSpacing = "leading"
    public var thresholding = false
    public var rescaleBetasZeroSnr = false

    enum CodingKeys: String, CodingKey {
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", clipSample = "clip_sample", clipSampleRange = "clip_sample_range"
        case setAlphaToOne = "set_alpha_to_one", stepsOffset = "steps_offset", predictionType = "prediction_type"
        case timestepSpacing = "timestep_spacing", thresholding, rescaleBetasZeroSnr = "rescale_betas_zero_snr"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ k: CodingKeys, _ d: T) throws -> T {
            if (try? c.decodeNil(forKey: k)) == true { return d }
            return try c.decodeIfPresent(T.self, forKey: k) ?? d
        }
        numTrainTimesteps = try get(.numTrainTimesteps, numTrainTimesteps)
        betaStart = try get(.betaStart, betaStart); betaEnd = try get(.betaEnd, betaEnd)
        betaSchedule = try get(.betaSchedule, betaSchedule); clipSample = try get(.clipSample, clipSample)
        clipSampleRange = try get(.clipSampleRange, clipSampleRange); setAlphaToOne = try get(.setAlphaToOne, setAlphaToOne)
        stepsOffset = try get(.stepsOffset, stepsOffset); predictionType = try get(.predictionType, predictionType)
        timestepSpacing = try get(.timestepSpacing, timestepSpacing); thresholding = try get(.thresholding, thresholding)
        rescaleBetasZeroSnr = try get(.rescaleBetasZeroSnr, rescaleBetasZeroSnr)
    }
}

public struct DDIMScheduler: Sendable {
    public let config: SchedulerConfig
    /// ᾱ_t for t in 0..<T (float32, as diffusers keeps them).
    public let alphasCumprod: [Float]
    let finalAlphaCumprod: Float

    public init(config: SchedulerConfig, path: String = "scheduler_config.json") throws {
        self.config = config
        let t = config.numTrainTimesteps
        guard t > 1 else { throw ModelError.badConfig(path, "num_train_timesteps must be > 1") }
        guard ["epsilon", "v_prediction", "sample"].contains(config.predictionType) else {
            throw ModelError.badConfig(path, "unsupported prediction_type '\(config.predictionType)'")
        }
        guard ["leading", "trailing", "linspace"].contains(config.timestepSpacing) else {
            throw ModelError.badConfig(path, "unsupported timestep_spacing '\(config.timestepSpacing)'")
        }
        if config.thresholding { throw ModelError.badConfig(path, "dynamic thresholding is not supported") }
        if config.rescaleBetasZeroSnr { throw ModelError.badConfig(path, "rescale_betas_zero_snr is not supported") }
        // Betas in float32 as torch.linspace(…, dtype=float32) gives them; ᾱ accumulated in double
        // and stored as float32 (ATen's cumprod accumulates float in double).
        var betas: [Float]
        switch config.betaSchedule {
        case "linear":
            betas = Self.linspace(Float(config.betaStart), Float(config.betaEnd), t)
        case "scaled_linear":
            betas = Self.linspace(Float(config.betaStart.squareRoot()), Float(config.betaEnd.squareRoot()), t).map { $0 * $0 }
        case "squaredcos_cap_v2":
            func alphaBar(_ x: Double) -> Double { pow(cos((x + 0.008) / 1.008 * Double.pi / 2), 2) }
            betas = (0..<t).map { i in Float(min(1 - alphaBar(Double(i + 1) / Double(t)) / alphaBar(Double(i) / Double(t)), 0.999)) }
        default:
            throw ModelError.badConfig(path, "unsupported beta_schedule '\(config.betaSchedule)'")
        }
        var acc = 1.0
        alphasCumprod = betas.map { b in
            acc *= Double(Float(1) - b)
            return Float(acc)
        }
        finalAlphaCumprod = config.setAlphaToOne ? 1 : alphasCumprod[0]
    }

    public init(folder: String) throws {
        let path = folder + "/scheduler_config.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.missingFile(path) }
        let cfg: SchedulerConfig
        do { cfg = try JSONDecoder().decode(SchedulerConfig.self, from: data) } catch { throw ModelError.badConfig(path, describe(error)) }
        try self.init(config: cfg, path: path)
    }

    /// torch.linspace in float32: start + step·i for the first half, end − step·(n − 1 − i) after.
    static func linspace(_ start: Float, _ end: Float, _ n: Int) -> [Float] {
        let step = (end - start) / Float(n - 1)
        return (0..<n).map { i in i < n / 2 ? start + step * Float(i) : end - step * Float(n - 1 - i) }
    }

    /// Inference timesteps, descending (set_timesteps), each clamped to 0…T−1.
    ///
    /// diffusers 0.31's DDIMScheduler indexes ᾱ with t as computed: with "leading" spacing and
    /// steps_offset 1 (every SD 1.x config), steps = T makes the first timestep T and raises an
    /// IndexError (diffusers issue #10003). lgap clamps the way diffusers' DDIMInverseScheduler does,
    /// min(t, T − 1), so every schedule the limits admit runs; for the schedules diffusers can run the
    /// result is unchanged.
    public func timesteps(steps: Int) -> [Int] {
        precondition(steps >= 1 && steps <= config.numTrainTimesteps, "steps must be in 1…num_train_timesteps (validate first)")
        let last = config.numTrainTimesteps - 1
        return unclampedTimesteps(steps: steps).map { min(max($0, 0), last) }
    }

    private func unclampedTimesteps(steps: Int) -> [Int] {
        let t = config.numTrainTimesteps
        switch config.timestepSpacing {
        case "linspace":
            // np.linspace(0, T − 1, steps).round()[::-1]: start + i·step, the last value exactly T − 1.
            let step = steps > 1 ? Double(t - 1) / Double(steps - 1) : 0
            return (0..<steps).map { i in
                Int((i == steps - 1 && steps > 1 ? Double(t - 1) : Double(i) * step).rounded(.toNearestOrEven))
            }.reversed()
        case "trailing":
            // np.round(np.arange(T, 0, −T/steps)) − 1
            let ratio = Double(t) / Double(steps)
            let count = Int((Double(t) / ratio).rounded(.up))
            return (0..<count).map { Int((Double(t) - Double($0) * ratio).rounded(.toNearestOrEven)) - 1 }
        default:  // leading
            let ratio = t / steps
            return (0..<steps).reversed().map { $0 * ratio + config.stepsOffset }
        }
    }

    /// The timesteps an img2img run with `strength` executes (StableDiffusionImg2ImgPipeline.get_timesteps).
    public func img2imgTimesteps(steps: Int, strength: Double) -> [Int] {
        let all = timesteps(steps: steps)
        let initTimestep = min(Int(Double(steps) * strength), steps)
        let start = max(steps - initTimestep, 0)
        return Array(all[start...])
    }

    /// √ᾱ_t · x + √(1 − ᾱ_t) · noise (add_noise).
    public func addNoise(_ x: Tensor, noise: Tensor, timestep t: Int) -> Tensor {
        let a = alphasCumprod[t]
        return x * a.squareRoot() + noise * (1 - a).squareRoot()
    }

    /// Why `steps` cannot run on this schedule, or nil (diffusers' set_timesteps refuses more inference
    /// steps than training timesteps).
    public func refusal(steps: Int) -> String? {
        steps > config.numTrainTimesteps
            ? "steps \(steps) exceeds the scheduler's num_train_timesteps \(config.numTrainTimesteps)" : nil
    }

    /// One DDIM update x_t → x_{t−Δ}. `varianceNoise` is required when eta > 0.
    public func step(
        modelOutput e: Tensor, timestep t: Int, sample x: Tensor, steps: Int, eta: Float = 0,
        varianceNoise: Tensor? = nil
    ) -> Tensor {
        precondition(t >= 0 && t < config.numTrainTimesteps, "timestep \(t) outside 0..<\(config.numTrainTimesteps)")
        let prev = t - config.numTrainTimesteps / steps
        let aT = alphasCumprod[t]
        let aPrev = prev >= 0 ? alphasCumprod[prev] : finalAlphaCumprod
        let bT = 1 - aT
        var x0: Tensor, eps: Tensor
        switch config.predictionType {
        case "sample":
            x0 = e
            eps = (x - e * aT.squareRoot()) * (1 / bT.squareRoot())
        case "v_prediction":
            x0 = x * aT.squareRoot() - e * bT.squareRoot()
            eps = e * aT.squareRoot() + x * bT.squareRoot()
        default:
            x0 = (x - e * bT.squareRoot()) * (1 / aT.squareRoot())
            eps = e
        }
        if config.clipSample { x0 = clamp(x0, -config.clipSampleRange, config.clipSampleRange) }
        let variance = ((1 - aPrev) / bT) * (1 - aT / aPrev)
        let std = eta * variance.squareRoot()
        var out = x0 * aPrev.squareRoot() + eps * (1 - aPrev - std * std).squareRoot()
        if eta > 0, let noise = varianceNoise { out = out + noise * std }
        return out
    }
}
