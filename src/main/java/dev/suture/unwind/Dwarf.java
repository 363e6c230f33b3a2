package dev.suture.unwind;

/** Constants of the DWARF call frame information and expression encodings, named as in the DWARF 5 specification. */
final class Dwarf {
    private Dwarf() {}

    // Call frame instructions (DWARF 5, section 6.4.2; GNU extensions from the LSB).
    static final int DW_CFA_advance_loc = 0x40;
    static final int DW_CFA_offset = 0x80;
    static final int DW_CFA_restore = 0xc0;
    static final int DW_CFA_nop = 0x00;
    static final int DW_CFA_set_loc = 0x01;
    static final int DW_CFA_advance_loc1 = 0x02;
    static final int DW_CFA_advance_loc2 = 0x03;
    static final int DW_CFA_advance_loc4 = 0x04;
    static final int DW_CFA_offset_extended = 0x05;
    static final int DW_CFA_restore_extended = 0x06;
    static final int DW_CFA_undefined = 0x07;
    static final int DW_CFA_same_value = 0x08;
    static final int DW_CFA_register = 0x09;
    static final int DW_CFA_remember_state = 0x0a;
    static final int DW_CFA_restore_state = 0x0b;
    static final int DW_CFA_def_cfa = 0x0c;
    static final int DW_CFA_def_cfa_register = 0x0d;
    static final int DW_CFA_def_cfa_offset = 0x0e;
    static final int DW_CFA_def_cfa_expression = 0x0f;
    static final int DW_CFA_expression = 0x10;
    static final int DW_CFA_offset_extended_sf = 0x11;
    static final int DW_CFA_def_cfa_sf = 0x12;
    static final int DW_CFA_def_cfa_offset_sf = 0x13;
    static final int DW_CFA_val_offset = 0x14;
    static final int DW_CFA_val_offset_sf = 0x15;
    static final int DW_CFA_val_expression = 0x16;
    static final int DW_CFA_GNU_args_size = 0x2e;
    static final int DW_CFA_GNU_negative_offset_extended = 0x2f;

    // Pointer encodings of .eh_frame and .eh_frame_hdr (LSB, "DWARF Exception Header Encoding").
    static final int DW_EH_PE_absptr = 0x00;
    static final int DW_EH_PE_uleb128 = 0x01;
    static final int DW_EH_PE_udata2 = 0x02;
    static final int DW_EH_PE_udata4 = 0x03;
    static final int DW_EH_PE_udata8 = 0x04;
    static final int DW_EH_PE_sleb128 = 0x09;
    static final int DW_EH_PE_sdata2 = 0x0a;
    static final int DW_EH_PE_sdata4 = 0x0b;
    static final int DW_EH_PE_sdata8 = 0x0c;
    static final int DW_EH_PE_pcrel = 0x10;
    static final int DW_EH_PE_textrel = 0x20;
    static final int DW_EH_PE_datarel = 0x30;
    static final int DW_EH_PE_funcrel = 0x40;
    static final int DW_EH_PE_aligned = 0x50;
    static final int DW_EH_PE_indirect = 0x80;
    static final int DW_EH_PE_omit = 0xff;

    // Expression operations (DWARF 5, section 2.5) that call frame expressions use.
    static final int DW_OP_addr = 0x03;
    static final int DW_OP_deref = 0x06;
    static final int DW_OP_const1u = 0x08;
    static final int DW_OP_const1s = 0x09;
    static final int DW_OP_const2u = 0x0a;
    static final int DW_OP_const2s = 0x0b;
    static final int DW_OP_const4u = 0x0c;
    static final int DW_OP_const4s = 0x0d;
    static final int DW_OP_const8u = 0x0e;
    static final int DW_OP_const8s = 0x0f;
    static final int DW_OP_constu = 0x10;
    static final int DW_OP_consts = 0x11;
    static final int DW_OP_dup = 0x12;
    static final int DW_OP_drop = 0x13;
    static final int DW_OP_over = 0x14;
    static final int DW_OP_pick = 0x15;
    static final int DW_OP_swap = 0x16;
    static final int DW_OP_rot = 0x17;
    static final int DW_OP_abs = 0x19;
    static final int DW_OP_and = 0x1a;
    static final int DW_OP_div = 0x1b;
    static final int DW_OP_minus = 0x1c;
    static final int DW_OP_mod = 0x1d;
    static final int DW_OP_mul = 0x1e;
    static final int DW_OP_neg = 0x1f;
    static final int DW_OP_not = 0x20;
    static final int DW_OP_or = 0x21;
    static final int DW_OP_plus = 0x22;
    static final int DW_OP_plus_uconst = 0x23;
    static final int DW_OP_shl = 0x24;
    static final int DW_OP_shr = 0x25;
    static final int DW_OP_shra = 0x26;
    static final int DW_OP_xor = 0x27;
    static final int DW_OP_bra = 0x28;
    static final int DW_OP_eq = 0x29;
    static final int DW_OP_ge = 0x2a;
    static final int DW_OP_gt = 0x2b;
    static final int DW_OP_le = 0x2c;
    static final int DW_OP_lt = 0x2d;
    static final int DW_OP_ne = 0x2e;
    static final int DW_OP_skip = 0x2f;
    static final int DW_OP_lit0 = 0x30;
    static final int DW_OP_lit31 = 0x4f;
    static final int DW_OP_reg0 = 0x50;
    static final int DW_OP_reg31 = 0x6f;
    static final int DW_OP_breg0 = 0x70;
    static final int DW_OP_breg31 = 0x8f;
    static final int DW_OP_regx = 0x90;
    static final int DW_OP_bregx = 0x92;
    static final int DW_OP_deref_size = 0x94;
    static final int DW_OP_nop = 0x96;

    /** DWARF register numbers of x86-64 (System V psABI, figure 3.36) that the unwinder tracks: rax..r15, RA. */
    static final int REGISTER_COUNT = 17;
    static final int RSP = 7;
    static final int RBP = 6;
    static final int RA = 16;
}
