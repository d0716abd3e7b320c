/// RocketMQAPI: the Swift types generated from `Protos/` (and the well-known types we use) by
/// the RocketMQCodegenPlugin at build time — messages, enums, client stubs and server protocols for
/// `apache.rocketmq.v2`, `grpc.health.v1` and `grpc.reflection`. The list of schemas is
/// `rocketmq-codegen.json` beside this file. Hand-written code here is limited to small extensions.
@_exported import RocketProto
