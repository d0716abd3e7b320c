/// Header fields to submit to nghttp2: built per call, or prebuilt once for the fields every plain
/// call sends (see ``PrebuiltHeaderFields``).
enum HeaderFields {
    case fields([(String, String)])
    case prebuilt(PrebuiltHeaderFields)

    /// The fields as text (for the rare paths that add to them).
    var strings: [(String, String)] {
        switch self {
        case .fields(let fields): fields
        case .prebuilt(let prebuilt): prebuilt.fields
        }
    }
}
