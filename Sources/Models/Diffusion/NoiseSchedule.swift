// Where an img2img purification puts its start noise. Both conventions run the same DDIM timesteps
// (the last int(steps × strength) of the schedule); they differ in the noise level the image is
// pushed to before the first of them.
//
// - diffusers (StableDiffusionImg2ImgPipeline): add_noise at the first denoising timestep, so the
//   first UNet call sees exactly the noise level it is told.
// - CompVis (ldm DDIMSampler, which the LGAP reference code runs): stochastic_encode(x0, t_enc)
//   noises to ddim_timesteps[t_enc], while decode(t_start: t_enc) starts at ddim_timesteps[t_enc − 1]:
//   the image carries one DDIM stride more noise than the first step assumes (strength 0.5, 50
//   steps: noised to t = 501, denoised from 481; ~29% more noise variance at ImageNet's strength 0.1:
//   101 vs 81).
import Foundation

public enum NoiseSchedule: String, Codable, Sendable {
    case diffusers
    case compvis

    /// The timestep the start noise is added at, given the first denoising timestep of a schedule
    /// with `steps` inference steps over `trainTimesteps`; nil when it would lie past the schedule
    /// (CompVis at strength 1 indexes past its DDIM table).
    public func noiseTimestep(firstStep t: Int, steps: Int, trainTimesteps: Int) -> Int? {
        switch self {
        case .diffusers: return t
        case .compvis:
            // CompVis' uniform DDIM discretisation: a stride of num_ddpm_timesteps // ddim_steps.
            let noised = t + trainTimesteps / steps
            return noised < trainTimesteps ? noised : nil
        }
    }
}
