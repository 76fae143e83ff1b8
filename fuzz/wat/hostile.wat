;; A hostile module for the `host_boundary` fuzz target. It runs a script of
;; host calls and memory writes given by the fuzzer: the init document at
;; nfv_init (and again at every nfv_tick), the first frame at nfv_process.
;; A script is a sequence of ops, one byte then little-endian i32 arguments:
;;   0 emit(port, ptr, len)              1 log(level, ptr, len)
;;   2 counter_define(kind, name_ptr, name_len, help_ptr, help_len, cell)
;;   3 config_error(path_ptr, path_len, msg_ptr, msg_len)
;;   4 store i32 b at descs + (a & 0xfff)  (descriptors: verdict, len, offset)
;;   5 return status a                   6 store i32 b at address a (may trap)
;;   7 memory.grow(a & 0xff)             8 trap
;;   9 now_ns                            10 nfv_alloc returns a from now on
;; Pointer arguments are relative to the script's first byte (wrapping).
(module
  (import "nfv" "log" (func $log (param i32 i32 i32)))
  (import "nfv" "now_ns" (func $now (result i64)))
  (import "nfv" "emit" (func $emit (param i32 i32 i32) (result i32)))
  (import "nfv" "counter_define" (func $counter (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "nfv" "config_error" (func $config_error (param i32 i32 i32 i32)))
  (memory (export "memory") 2 16)
  (global $heap (mut i32) (i32.const 1024))
  (global $alloc_override (mut i32) (i32.const 0))
  (global $init_ptr (mut i32) (i32.const 0))
  (global $init_len (mut i32) (i32.const 0))
  (func (export "nfv_abi_version") (result i32) (i32.const 2))
  (func (export "nfv_alloc") (param $len i32) (result i32)
    (local $p i32)
    (if (global.get $alloc_override) (then (return (global.get $alloc_override))))
    (local.set $p (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (local.get $p) (local.get $len)) (i32.const 15))
               (i32.const -16)))
    (local.get $p))
  (func $arg (param $at i32) (param $end i32) (result i32)
    (if (result i32) (i32.gt_u (i32.add (local.get $at) (i32.const 4)) (local.get $end))
      (then (i32.const 0))
      (else (i32.load (local.get $at)))))
  (func $run (param $p i32) (param $len i32) (param $descs i32) (result i32)
    (local $end i32) (local $op i32) (local $status i32) (local $base i32)
    (local.set $base (local.get $p))
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $op (i32.rem_u (i32.load8_u (local.get $p)) (i32.const 11)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (if (i32.eq (local.get $op) (i32.const 0))
          (then
            (drop (call $emit (call $arg (local.get $p) (local.get $end))
              (i32.add (local.get $base) (call $arg (i32.add (local.get $p) (i32.const 4)) (local.get $end)))
              (call $arg (i32.add (local.get $p) (i32.const 8)) (local.get $end))))
            (local.set $p (i32.add (local.get $p) (i32.const 12)))))
        (if (i32.eq (local.get $op) (i32.const 1))
          (then
            (call $log (call $arg (local.get $p) (local.get $end))
              (i32.add (local.get $base) (call $arg (i32.add (local.get $p) (i32.const 4)) (local.get $end)))
              (call $arg (i32.add (local.get $p) (i32.const 8)) (local.get $end)))
            (local.set $p (i32.add (local.get $p) (i32.const 12)))))
        (if (i32.eq (local.get $op) (i32.const 2))
          (then
            (drop (call $counter (call $arg (local.get $p) (local.get $end))
              (i32.add (local.get $base) (call $arg (i32.add (local.get $p) (i32.const 4)) (local.get $end)))
              (call $arg (i32.add (local.get $p) (i32.const 8)) (local.get $end))
              (i32.add (local.get $base) (call $arg (i32.add (local.get $p) (i32.const 12)) (local.get $end)))
              (call $arg (i32.add (local.get $p) (i32.const 16)) (local.get $end))
              (call $arg (i32.add (local.get $p) (i32.const 20)) (local.get $end))))
            (local.set $p (i32.add (local.get $p) (i32.const 24)))))
        (if (i32.eq (local.get $op) (i32.const 3))
          (then
            (call $config_error
              (i32.add (local.get $base) (call $arg (local.get $p) (local.get $end)))
              (call $arg (i32.add (local.get $p) (i32.const 4)) (local.get $end))
              (i32.add (local.get $base) (call $arg (i32.add (local.get $p) (i32.const 8)) (local.get $end)))
              (call $arg (i32.add (local.get $p) (i32.const 12)) (local.get $end)))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))))
        (if (i32.eq (local.get $op) (i32.const 4))
          (then
            (i32.store
              (i32.add (local.get $descs)
                (i32.and (call $arg (local.get $p) (local.get $end)) (i32.const 0xfff)))
              (call $arg (i32.add (local.get $p) (i32.const 4)) (local.get $end)))
            (local.set $p (i32.add (local.get $p) (i32.const 8)))))
        (if (i32.eq (local.get $op) (i32.const 5))
          (then
            (local.set $status (call $arg (local.get $p) (local.get $end)))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))))
        (if (i32.eq (local.get $op) (i32.const 6))
          (then
            (i32.store (call $arg (local.get $p) (local.get $end))
              (call $arg (i32.add (local.get $p) (i32.const 4)) (local.get $end)))
            (local.set $p (i32.add (local.get $p) (i32.const 8)))))
        (if (i32.eq (local.get $op) (i32.const 7))
          (then
            (drop (memory.grow
              (i32.and (call $arg (local.get $p) (local.get $end)) (i32.const 0xff))))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))))
        (if (i32.eq (local.get $op) (i32.const 8)) (then unreachable))
        (if (i32.eq (local.get $op) (i32.const 9)) (then (drop (call $now))))
        (if (i32.eq (local.get $op) (i32.const 10))
          (then
            (global.set $alloc_override (call $arg (local.get $p) (local.get $end)))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))))
        (br $next)))
    (local.get $status))
  (func (export "nfv_init") (param $ptr i32) (param $len i32) (result i32)
    (global.set $init_ptr (local.get $ptr))
    (global.set $init_len (local.get $len))
    (call $run (local.get $ptr) (local.get $len) (i32.const 0)))
  (func (export "nfv_tick") (param i64)
    (drop (call $run (global.get $init_ptr) (global.get $init_len) (i32.const 0))))
  (func (export "nfv_process") (param $descs i32) (param $count i32) (result i32)
    (if (result i32) (i32.eqz (local.get $count))
      (then (i32.const 0))
      (else
        (call $run (i32.load (local.get $descs)) (i32.load offset=4 (local.get $descs))
                   (local.get $descs))))))
