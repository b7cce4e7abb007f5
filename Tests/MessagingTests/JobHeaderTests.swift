// The header parser's strictness, without a socket: duplicate keys (in any object, however escaped),
// unknown fields and mistyped params are refused with their reason code; control characters in what
// the refusal quotes are escaped.
import Foundation
import JobModel
@testable import Messaging
import XCTest

final class JobHeaderTests: XCTestCase {
    func parse(_ text: String) -> Result<JobHeader, ProtocolError> {
        Result { try JobHeader.parse(Array(text.utf8)) }.mapError { ($0 as? ProtocolError) ?? .badHeader("\($0)") }
    }

    func testDuplicateKeysAreRefusedWhereverTheyAre() {
        for text in [
            #"{"id":"a","id":"b"}"#, #"{"id":"a","\u0069d":"b"}"#, #"{"params":{"steps":5,"steps":50}}"#,
            #"{"meta":{"x":{"k":1,"k":2}}}"#
        ] {
            guard case .failure(let e) = parse(text) else { XCTFail("accepted \(text)"); continue }
            XCTAssertEqual(e.code, .badHeader, text)
            XCTAssertTrue(e.description.contains("repeats the key"), e.description)
        }
        // The same key in different objects, in arrays, or inside string values is fine.
        XCTAssertNoThrow(try parse(#"{"id":"a","meta":{"id":"b","l":[{"k":1},{"k":2}],"s":"\"id\":1,\"id\":2"}}"#).get())
    }

    func testScannerOnNestingAndEscapes() {
        XCTAssertNil(JSONObjectKeys.firstDuplicate(in: Array(#"{"a":{"a":{"a":1}},"b":[{"a":1,"b":2}]}"#.utf8)))
        XCTAssertEqual(JSONObjectKeys.firstDuplicate(in: Array(#"{"a\"b":1,"a\u0022b":2}"#.utf8)), #"a"b"#)
        XCTAssertEqual(JSONObjectKeys.firstDuplicate(in: Array(#"[{"x":1},{"y":1,"y":2}]"#.utf8)), "y")
    }

    func testFieldsAndParams() throws {
        let h = try parse(#"{"id":"cam-1","format":"JPG","label":3,"params":{"strength":0.3,"steps":20,"seed":"18446744073709551615"}}"#).get()
        XCTAssertEqual(h.id, "cam-1")
        XCTAssertEqual(h.format, .jpeg)
        XCTAssertEqual(h.label, "3")
        XCTAssertEqual(h.params, JobParams(strength: 0.3, steps: 20, seed: UInt64.max))
        for (text, code) in [
            (#"{"colour":1}"#, ReasonCode.badHeader), (#"{"id":"a b"}"#, .invalidID), (#"{"params":{"steps":2.5}}"#, .badParams),
            (#"{"params":{"strength":true}}"#, .badParams), (#"{"format":"gif"}"#, .unknownFormat), ("[1]", .badHeader)
        ] {
            guard case .failure(let e) = parse(text) else { XCTFail("accepted \(text)"); continue }
            XCTAssertEqual(e.code, code, text)
        }
    }

    func testRefusalsQuoteInputEscaped() {
        guard case .failure(let e) = parse(#"{"id":"x\u001b[31m\nforged"}"#) else { return XCTFail("accepted an id with ESC") }
        XCTAssertEqual(e.code, .invalidID)
        XCTAssertFalse(e.description.unicodeScalars.contains { $0.value == 0x1B || $0 == "\n" }, e.description)
    }

    func testAckEncodesTheReasonCode() {
        let a = Ack(id: "j", status: .rejected, reason: .storeUnavailable, message: "disk full")
        XCTAssertEqual(String(decoding: a.bytes, as: UTF8.self), #"{"id":"j","message":"disk full","reason":"store_unavailable","status":"rejected"}"#)
        XCTAssertEqual(Ack.decode(a.bytes), a)
    }
}
