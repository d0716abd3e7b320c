/// RocketMQTestingSchema: the Swift the Codegen plugin generates from the test-only schemas
/// `Protos/rocketmq/testing/v1` (every field kind the generator supports), plus the fixture the
/// codec tests share. Used by RocketProtoTests and RocketMQAdminTests; not shipped.
@_exported import RocketMQAPI

public typealias AllFields = Rocketmq_Testing_V1_AllFields
public typealias Point = AllFields.Point

/// A message with every field set to an edge value: extremes, negatives, empty and non-ASCII text.
public func everyFieldSet() -> AllFields {
    var m = AllFields()
    m.fInt32 = .min
    m.fInt64 = .min
    m.fUint32 = .max
    m.fUint64 = .max
    m.fSint32 = -1
    m.fSint64 = .min
    m.fFixed32 = .max
    m.fFixed64 = .max
    m.fSfixed32 = -2
    m.fSfixed64 = .max
    m.fFloat = -.infinity
    m.fDouble = 1e-300
    m.fBool = true
    m.fString = "héllo ☺ 😈 \t\n"
    m.fBytes = [0, 1, 2, 0xFF, 0]
    m.fShade = .dark
    m.fMood = .grumpy
    m.fPoint = Point(x: -7, y: 9)
    m.rInt32 = [0, -1, .max, .min]
    m.rInt64 = [.min, 0, .max]
    m.rUint32 = [0, .max]
    m.rUint64 = [.max, 1]
    m.rSint32 = [-1, 1, .min]
    m.rSint64 = [-2, .max]
    m.rFixed32 = [1, 2, 3]
    m.rFixed64 = [.max]
    m.rSfixed32 = [-5]
    m.rSfixed64 = [.min]
    m.rFloat = [1.5, -0.25]
    m.rDouble = [.pi, -.greatestFiniteMagnitude]
    m.rBool = [true, false, true]
    m.rString = ["", "a", "ü"]
    m.rBytes = [[], [0], [1, 2]]
    m.rShade = [.light, .UNRECOGNIZED(99), .unspecified]
    m.rPoint = [Point(), Point(x: 1), Point(y: 2)]
    m.mStringString = ["k": "v", "": "empty key", "ключ": "значение"]
    m.mInt32Point = [-1: Point(x: 1, y: 1), 0: Point()]
    m.mBoolShade = [true: .dark, false: .light]
    m.mUint64Bytes = [.max: [9, 9], 0: []]
    m.mSint64Double = [-3: 2.5]
    m.choice = .cPoint(Point(x: 3))
    m.oInt32 = 0
    m.oString = ""
    m.oPoint = Point()
    m.oShade = .unspecified
    m.oBool = false
    m.at = Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 123_456_789)
    m.after = Google_Protobuf_Duration(seconds: -1, nanos: -500)
    m.nothing = Google_Protobuf_Empty()
    m.label = Rocketmq_Testing_Other_V1_Label(key: "k", value: "v")
    m.labels = [Rocketmq_Testing_Other_V1_Label(key: "a"), Rocketmq_Testing_Other_V1_Label(value: "b")]
    m.default = "keyword"
    m.internal = 42
    return m
}
