// Turn run-time values into compile-time constants, the way flash-attention's
// static_switch.h does: each branch instantiates the body once, so the set of
// template instances is explicit and small (design.md budgets them).
#pragma once

// BOOL_SWITCH(cond, NAME, [&] { use<NAME>(); });
#define BOOL_SWITCH(COND, CONST_NAME, ...)      \
  [&] {                                         \
    if (COND) {                                 \
      constexpr static bool CONST_NAME = true;  \
      return __VA_ARGS__();                     \
    } else {                                    \
      constexpr static bool CONST_NAME = false; \
      return __VA_ARGS__();                     \
    }                                           \
  }()
