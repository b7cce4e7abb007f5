// A model pack loader: pack.json plus whichever models the folder holds (captioner/, the diffusion
// purifier's folders, classifier/). What a job does with them (stages, the ensemble vote, the caption
// consistency flag) is JobProcessing's business.
import Digest
import Foundation
import ImageIO
import NN
import Tensor

public final class Pack: Sendable {
    public let folder: String
    public let manifest: PackManifest
    public let classifier: ImageClassifier
    public let purifier: DiffusionPurifier?
    public let captioner: Captioner?

    /// Loads every stage present in `folder`; the classifier is required.
    public init(folder: String) throws {
        self.folder = folder
        manifest = try PackManifest.load(folder: folder)
        let fm = FileManager.default
        classifier = try ImageClassifier(folder: folder + "/classifier")
        guard classifier.classNames == manifest.classes else {
            throw ModelError.badConfig(folder + "/pack.json", "classes differ from classifier/config.json's class_names")
        }
        if fm.fileExists(atPath: folder + "/unet/config.json") {
            let size = manifest.imageSize.map { ($0[0], $0[1]) }
            purifier = try DiffusionPurifier(
                pack: folder, modelSize: size,
                resizeMode: InterpolationMode(rawValue: manifest.resize ?? "bicubic") ?? .bicubic,
                noiseSchedule: manifest.noise)
        } else {
            purifier = nil
        }
        captioner =
            fm.fileExists(atPath: folder + "/captioner/config.json")
            ? try Captioner(folder: folder + "/captioner", resize: manifest.captioning?.resize.flatMap(InterpolationMode.init(rawValue:)))
            : nil
    }

    /// Purification parameters: the pack's defaults, overridden field by field.
    public func parameters(
        strength: Double? = nil, steps: Int? = nil, guidance: Double? = nil, eta: Double? = nil,
        ensemble: Int? = nil, seed: UInt64
    ) -> PurificationParameters {
        let d = manifest.purification
        return PurificationParameters(
            strength: strength ?? d.strength, steps: steps ?? d.steps, guidance: guidance ?? d.guidance,
            eta: eta ?? d.eta ?? 0, seed: seed, ensemble: ensemble ?? d.ensemble ?? 1)
    }

    /// Refuses parameters this pack cannot run (general limits, and the purifier's schedule).
    public func validate(_ p: PurificationParameters) throws {
        if let purifier { try purifier.validate(p) } else { try p.validate() }
    }

    public var captionOptions: GenerationOptions {
        let c = manifest.captioning
        return GenerationOptions(numBeams: c?.numBeams, maxLength: c?.maxLength, minLength: c?.minLength, prompt: c?.prompt)
    }

    /// Captions for a batch of images (nil when the pack has no captioner).
    public func caption(_ images: [RGBImage]) throws -> [Caption]? {
        guard let captioner else { return nil }
        return try captioner.caption(images, options: captionOptions)
    }

    /// K purified 8-bit images for one image (the image itself when the pack has no purifier).
    public func purify(
        _ image: RGBImage, caption: String, parameters: PurificationParameters,
        progress: (@Sendable () -> Void)? = nil
    ) throws -> [RGBImage] {
        try purify([(image, caption, parameters)], progress: progress)[0]
    }

    /// Purifies a batch in one denoising loop (images and parameters must share schedule and size:
    /// see DiffusionPurifier.canBatch). Each image's results equal those of `purify` alone.
    public func purify(
        _ items: [(image: RGBImage, caption: String, parameters: PurificationParameters)],
        progress: (@Sendable () -> Void)? = nil
    ) throws -> [[RGBImage]] {
        guard let purifier else { return items.map { [$0.image] } }
        let requests = items.map { PurificationRequest(image: $0.image.tensor(), caption: $0.caption, parameters: $0.parameters) }
        return try purifier.purify(requests, progress: progress).map { out in
            chunk(out, parts: out.shape[0], axis: 0).map { RGBImage(tensor: $0) }
        }
    }

    /// Model files with their SHA-256 and parameter counts (provenance).
    public func modelFiles() throws -> [(stage: String, name: String, path: String, sha256: String, parameters: Int)] {
        var out: [(String, String, String, String, Int)] = []
        func add(_ stage: String, _ name: String, _ sub: String, _ params: Int) throws {
            for file in ["model.safetensors", "diffusion_pytorch_model.safetensors"] {
                let p = folder + "/" + sub + "/" + file
                if FileManager.default.fileExists(atPath: p) { out.append((stage, name, p, try SHA256.hex(fileAt: p), params)) }
            }
        }
        try add("classify", classifier.config.architecture.rawValue, "classifier", classifier.parameterCount)
        if captioner != nil { try add("caption", "blip", "captioner", try WeightStore(folder: folder + "/captioner").parameterCount) }
        if let purifier {
            try add("purify", "clip_text_encoder", "text_encoder", purifier.textEncoder.parameterCount)
            try add("purify", "unet", "unet", purifier.unet.parameterCount)
            if let vae = purifier.vae { try add("purify", "vae", "vae", vae.parameterCount) }
        }
        return out
    }
}
