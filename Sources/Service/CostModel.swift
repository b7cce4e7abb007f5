// What a job costs, decided at the door from its header alone (no pixel decoded yet).
//
// Compute, in pixel-steps:
//     cost = K × (P_model × S × G + P_input)
// K: ensemble size; S = int(steps × strength): denoising steps run; G: UNet passes a step (2 with
// classifier-free guidance, else 1); P_model: pixels the purifier works at (the pack's image_size,
// the input's own without one; 0 without a purifier); P_input: the input's pixels (each purified copy
// is restored to the input's size and classified). `[limits] max_job_cost` refuses larger jobs.
//
// Memory, in bytes, while the job is inside the pipeline:
//     memory = 32 × P_input + 48 × K × G × P_model
// the decoded RGB image (3 bytes a pixel), its float copy for the purifier (12), one restored float
// copy and its 8-bit image at a time (16), plus the purifier's K × G working samples (an estimate of
// the UNet's activations per model pixel). The feeder admits jobs into the pipeline only while their
// sum stays under `[limits] max_inflight_bytes`; a job whose own memory exceeds it is refused.
import JobModel
import Models

public struct CostModel: Sendable, Equatable {
    /// The purifier's working pixels (nil: the input's own size); nil purifier: no purification stage.
    public var modelPixels: Int?
    public var hasPurifier: Bool

    public init(modelPixels: Int?, hasPurifier: Bool) {
        self.modelPixels = modelPixels
        self.hasPurifier = hasPurifier
    }

    public func cost(_ p: PurificationParameters, width: Int, height: Int) -> Int64 {
        let input = Int64(width) * Int64(height)
        guard hasPurifier else { return input }
        let model = Int64(modelPixels ?? width * height)
        let steps = Int64(Double(p.steps) * p.strength)
        let passes: Int64 = p.guidance > 1 ? 2 : 1
        return Int64(p.ensemble) * (model * steps * passes + input)
    }

    public func memoryBytes(_ p: PurificationParameters, width: Int, height: Int) -> Int64 {
        let input = Int64(width) * Int64(height)
        guard hasPurifier else { return 32 * input }
        let model = Int64(modelPixels ?? width * height)
        let passes: Int64 = p.guidance > 1 ? 2 : 1
        return 32 * input + 48 * Int64(p.ensemble) * passes * model
    }
}
