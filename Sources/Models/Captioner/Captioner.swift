// Port of transformers BlipForConditionalGeneration (modeling_blip.py) with its BlipProcessor: loads a
// Hugging Face BLIP captioning folder (config.json, model.safetensors, preprocessor_config.json,
// vocab.txt + tokenizer files, optional generation_config.json) and captions images the way
// `model.generate(**processor(images, text=prompt))` followed by `processor.decode(...,
// skip_special_tokens=True)` does.
import Foundation
import ImageIO
import NN
import Tensor

/// One image's caption.
public struct Caption: Sendable, Equatable {
    /// The decoded caption with the prompt (if any) removed from its start.
    public var text: String
    /// transformers' generated row without batch padding: [DEC], prompt tokens, new tokens, and
    /// [SEP] when the caption ended before max_length.
    public var tokenIDs: [Int]
    /// Beam search: the hypothesis score (transformers' sequences_scores, sum of log-probabilities /
    /// generated length ** length_penalty); greedy search: nil.
    public var score: Float?
}

public struct Captioner: Sendable {
    public let config: BlipConfig
    public let processor: BlipImageProcessor
    public let tokenizer: WordPieceTokenizer
    public let vision: BlipVisionModel
    public let decoder: BlipTextDecoder
    /// generation_config.json's settings over the legacy ones in config.json's text_config.
    public let generationDefaults: BlipGenerationConfig

    /// `resize`: nil resizes with the processor's own PIL filter on the 8-bit image (transformers);
    /// a mode resizes the float image with torch interpolate instead (pack.json captioning.resize).
    public init(folder: String, resize: InterpolationMode? = nil) throws {
        config = try BlipConfig.load(folder: folder)
        let store = try WeightStore(folder: folder)
        let w = WeightScope(store)
        vision = try BlipVisionModel(w.scope("vision_model"), config: config.visionConfig)
        decoder = try BlipTextDecoder(w.scope("text_decoder"), config: config.textConfig)
        try store.checkAllUsed()
        tokenizer = try WordPieceTokenizer(folder: folder)
        var processor = try BlipImageProcessor(folder: folder)
        processor.tensorResize = resize
        self.processor = processor
        let fileDefaults = try BlipGenerationConfig.load(folder: folder) ?? BlipGenerationConfig()
        generationDefaults = fileDefaults.filling(from: config.textConfig.generation)

        let vocabPath = (folder as NSString).appendingPathComponent("vocab.txt")
        guard tokenizer.count <= config.textConfig.vocabSize else {
            throw ModelError.badConfig(vocabPath, "tokenizer has \(tokenizer.count) tokens, the model's vocab_size is \(config.textConfig.vocabSize)")
        }
        if processor.config.doResize {
            let p = config.visionConfig.patchSize, grid = config.visionConfig.gridSize
            guard (processor.config.height / p) * (processor.config.width / p) <= grid * grid else {
                throw ModelError.badConfig(
                    (folder as NSString).appendingPathComponent("preprocessor_config.json"),
                    "size \(processor.config.height)×\(processor.config.width) gives more patches than the vision model's \(config.visionConfig.imageSize)×\(config.visionConfig.imageSize)"
                )
            }
        }
    }

    /// Captions `images` (one batch: each image is encoded once, then decoded).
    public func caption(_ images: [RGBImage], options: GenerationOptions = .init()) throws -> [Caption] {
        guard !images.isEmpty else { return [] }
        return try caption(pixelValues: processor.pixelValues(images), options: options)
    }

    /// Captions preprocessed pixel_values [N, 3, H, W].
    public func caption(pixelValues: Tensor, options: GenerationOptions = .init()) throws -> [Caption] {
        let imageEmbeds = try imageEmbeddings(pixelValues: pixelValues)
        let prefix = promptPrefix(options.prompt)
        let settings = try GenerationSettings(
            explicit: options.asConfig, defaults: generationDefaults,
            text: config.textConfig, promptLength: prefix.count)
        let generated = BlipGenerator(decoder: decoder).generate(imageEmbeds: imageEmbeds, prefix: prefix, settings: settings)
        let promptText = tokenizer.decode(prefix)
        return generated.map { sequence in
            Caption(
                text: removingPrompt(promptText, from: tokenizer.decode(sequence.ids)), tokenIDs: sequence.ids,
                score: sequence.score)
        }
    }

    /// `text` without a leading `prompt` and the spaces after it, compared code point by code point
    /// (a combining mark after the space would otherwise merge with it into one Character).
    func removingPrompt(_ prompt: String, from text: String) -> String {
        let p = Array(prompt.unicodeScalars), t = Array(text.unicodeScalars)
        guard !p.isEmpty, t.hasPiece(p, at: 0) else { return text }
        return String(String.UnicodeScalarView(t.dropFirst(p.count).drop(while: { $0 == " " })))
    }

    /// The vision model's last_hidden_state [N, 1 + patches, C] for pixel_values [N, 3, H, W].
    public func imageEmbeddings(pixelValues: Tensor) throws -> Tensor {
        let v = config.visionConfig
        guard pixelValues.rank == 4, pixelValues.shape[1] == 3 else {
            throw ModelError.badInput("pixel_values must be [N, 3, H, W], got \(pixelValues.shape)")
        }
        let patches = (pixelValues.shape[2] / v.patchSize) * (pixelValues.shape[3] / v.patchSize)
        guard patches >= 1, patches <= v.gridSize * v.gridSize else {
            throw ModelError.badInput(
                "pixel_values \(pixelValues.shape[2])×\(pixelValues.shape[3]) do not fit the vision model's \(v.imageSize)×\(v.imageSize) positions")
        }
        return vision(pixelValues)
    }

    /// BLIP's generate() input: the processor's [CLS] prompt [SEP] with [CLS] replaced by [DEC] and
    /// [SEP] dropped; without a prompt just [DEC].
    func promptPrefix(_ prompt: String?) -> [Int] {
        guard let prompt else { return [config.textConfig.bosTokenId] }
        let ids = tokenizer.encode(prompt)
        return [config.textConfig.bosTokenId] + ids.dropFirst().dropLast()
    }
}
