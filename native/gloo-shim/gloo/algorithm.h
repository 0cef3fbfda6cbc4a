// See rendezvous/store.h: declarations only.
#pragma once
#include "context.h"
