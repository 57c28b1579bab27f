/*
 * insncount: a QEMU TCG plugin that counts the guest instructions executed between two
 * marker addresses, for `cargo xtask firmware`.
 *
 *   qemu-system-arm ... -plugin libinsncount.so,start=0xADDR,stop=0xADDR,out=FILE
 *
 * Every executed instruction adds 1 to a counter (an inline add: exact, and the same count
 * on every run). Reaching `start` (the first instruction of the firmware's
 * `synthpool_measure_start`) notes the counter; reaching `stop` writes the difference to
 * FILE, one decimal line per region, in execution order. The firmware logs which region
 * is which.
 *
 * Built by xtask with the system's gcc. QEMU 7.2 exports its plugin API (API version 1)
 * but Debian ships no qemu-plugin.h, so the few declarations used are written out below,
 * as documented in QEMU 7.2's include/qemu/qemu-plugin.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The QEMU 7.2 plugin API used here (API version 1) ---- */
#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op, void *ptr,
                                                uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
/* ---- end of the API ---- */

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

/* The mps2-an386 has one vCPU, so plain globals suffice. */
static uint64_t executed;
static uint64_t region_start;
static uint64_t start_addr, stop_addr;
static FILE *out;

static void on_start(unsigned int vcpu, void *udata) {
    (void)vcpu, (void)udata;
    region_start = executed;
}

static void on_stop(unsigned int vcpu, void *udata) {
    (void)vcpu, (void)udata;
    fprintf(out, "%" PRIu64 "\n", executed - region_start);
    /* Flushed per region: a guest that hangs and is killed still leaves its counts. */
    fflush(out);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t vaddr = qemu_plugin_insn_vaddr(insn);
        /* The marker callbacks go first: they see the count before this instruction. */
        if (vaddr == start_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (vaddr == stop_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_stop, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &executed, 1);
    }
}

static void on_qemu_exit(qemu_plugin_id_t id, void *udata) {
    (void)id, (void)udata;
    fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "start=", 6) == 0) {
            start_addr = strtoull(argv[i] + 6, NULL, 0);
        } else if (strncmp(argv[i], "stop=", 5) == 0) {
            stop_addr = strtoull(argv[i] + 5, NULL, 0);
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else {
            fprintf(stderr, "insncount: unknown argument %s (takes start=ADDR,stop=ADDR,out=FILE)\n", argv[i]);
            return -1;
        }
    }
    if (start_addr == 0 || stop_addr == 0 || start_addr == stop_addr || path == NULL) {
        fprintf(stderr, "insncount: needs start=ADDR,stop=ADDR (different, non-zero) and out=FILE\n");
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        perror(path);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
    return 0;
}
