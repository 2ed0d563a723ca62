/* SPDX-License-Identifier: MIT */
/*
 * The recording test backend ("rec", libferry_rec.so) forwards execute to
 * this hook, which the test program defines and exports (it is linked with
 * -export-dynamic), so the test decides what each batch does.
 */
#ifndef FERRY_TESTS_SCHED_REC_H
#define FERRY_TESTS_SCHED_REC_H

#include <ferry/backend.h>

FERRY_BE_EXPORT ferry_be_error *ferry_test_rec_execute(ferry_be_instance *inst,
						       ferry_be_request **reqs, uint32_t count);

#endif
