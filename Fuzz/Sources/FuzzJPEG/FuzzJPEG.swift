// libFuzzer target: the JPEG decoder must throw or return an image within limits, never crash.
import LGAPFuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzEntry.decode(Array(UnsafeBufferPointer(start: data, count: size)), format: "jpeg")
    return 0
}
