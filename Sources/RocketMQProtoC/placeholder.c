#include "RocketMQProtoC.h"
