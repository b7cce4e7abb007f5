// Every machine-readable reason lgap gives for refusing, rejecting or failing a job. README's list
// of reasons is checked against this enum (JobModelTests), so the two cannot drift apart.

public enum ReasonCode: String, Codable, Sendable, CaseIterable {
    // Refused at the door (ack status "rejected", a refusal record; the job never runs).
    case badHeader = "bad_header"
    case invalidID = "invalid_id"
    case badParams = "bad_params"
    case missingFrame = "missing_frame"
    case extraFrames = "extra_frames"
    case headerTooLarge = "header_too_large"
    case frameTooLarge = "frame_too_large"
    case emptyImage = "empty_image"
    case unknownFormat = "unknown_format"
    case formatMismatch = "format_mismatch"
    case imageTooLarge = "image_too_large"
    case unsupportedImage = "unsupported_image"
    case tooExpensive = "too_expensive"
    case storeUnavailable = "store_unavailable"
    // Acknowledged "duplicate".
    case duplicateID = "duplicate_id"
    // Found while processing (the job's result and record).
    case corruptImage = "corrupt_image"
    case captionError = "caption_error"
    case purifyError = "purify_error"
    case classifyError = "classify_error"
    case tooManyAttempts = "too_many_attempts"
    // lgapctl purify only (offline, no daemon).
    case unreadable

    /// One line for operators (README's reason table is checked against these).
    public var summary: String {
        switch self {
        case .badHeader: return "the header is not a UTF-8 JSON object, repeats a key, or has an unknown or mistyped field"
        case .invalidID: return "the id is not 1–128 characters of A-Z a-z 0-9 . _ : -"
        case .badParams: return "a purification parameter is unknown, mistyped or outside what the pack can run"
        case .missingFrame: return "fewer than two frames (header, image)"
        case .extraFrames: return "more than two frames"
        case .headerTooLarge: return "the header frame exceeds max_header_bytes"
        case .frameTooLarge: return "the image frame exceeds max_message_bytes"
        case .emptyImage: return "the image frame is empty"
        case .unknownFormat: return "the image is not PNG, JPEG or binary PPM"
        case .formatMismatch: return "the declared format disagrees with the image's magic bytes"
        case .imageTooLarge: return "the image's dimensions exceed max_image_side / max_image_pixels"
        case .unsupportedImage: return "a variant lgap does not decode (CMYK JPEG, 16-bit PPM, …)"
        case .tooExpensive: return "the job's cost (pixels × steps × ensemble × guidance passes) exceeds max_job_cost, or its memory the in-flight budget"
        case .storeUnavailable: return "the store cannot commit the job now (disk full, database down): retry later"
        case .duplicateID: return "a job with this id was already accepted (it runs once)"
        case .corruptImage: return "the image data is damaged (its header at the door, its pixels in the decode stage)"
        case .captionError: return "the captioner failed on this image"
        case .purifyError: return "the purifier failed on this image"
        case .classifyError: return "the classifier failed on this image"
        case .tooManyAttempts: return "the daemon died max_attempts times while this job ran alone (a poison job)"
        case .unreadable: return "lgapctl purify could not read the file"
        }
    }

    /// Where the reason is given: at the door (refusal), as a duplicate, while processing, offline.
    public var origin: String {
        switch self {
        case .duplicateID: return "ack"
        case .corruptImage, .captionError, .purifyError, .classifyError, .tooManyAttempts: return "result"
        case .unreadable: return "lgapctl"
        default: return "door"
        }
    }

    /// README's reason table (JobModelTests checks README against it).
    public static var markdownTable: String {
        (["| reason | where | meaning |", "|---|---|---|"] + allCases.map { "| `\($0.rawValue)` | \($0.origin) | \($0.summary) |" })
            .joined(separator: "\n")
    }

    /// Whether the same message may succeed later (a producer should retry it).
    public var isRetryable: Bool { self == .storeUnavailable }
}
