// See ../rendezvous/store.h: declarations only.
#pragma once
