// SPDX-License-Identifier: MIT
/* The tests' in-process memfd dirty source, shared rather than copied. */
#include "../../tests/daemon/engine/memfd_source.c" // NOLINT(bugprone-suspicious-include)
