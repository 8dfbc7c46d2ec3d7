// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Quorate withdrawal vault
/// @notice Holds native coin and ERC-20/TRC-20 tokens and pays them out only on a
///         FROST(secp256k1, SHA-256) threshold signature (RFC 9591) by the Quorate
///         group key. There is no owner, no admin address, no upgrade path and no
///         delegatecall: the group key is the only authority. The same bytecode
///         (compiled for the "paris" EVM) runs on EVM chains and on Tron's TVM.
///         The group key signs withdrawals, per-token caps and key rotations,
///         each admin action at the next admin nonce. A cap lowering applies at
///         once; a cap raise and a key rotation only after capRaiseDelay seconds
///         (at least one hour), and until then the key in force keeps signing
///         everything and can cancel them. So a thief holding a threshold of
///         copied shares can neither raise a cap nor replace the key without
///         the honest group, which holds the same key, having capRaiseDelay
///         seconds to cancel it and to lower the caps.
/// @dev Every digest is keccak256 over 32-byte ABI words and binds the chain id,
///      this vault's address and VERSION, so a signature is good for exactly one
///      action on one vault on one chain. Signatures are checked with the
///      ecrecover trick: ecrecover(h, v, r, s) returns address(r^-1 (s*P - h*G))
///      where P is the point of x-coordinate r and y parity v - 27; with r = x,
///      s = -c*x and h = -z*x it returns address(z*G - c*PK), which must equal
///      address(R). The recovered word is masked to 160 bits first: Tron's
///      precompile answers the 21-byte Tron address (prefix byte 0x41).
///      Every admin event carries the admin nonce its action was signed at and
///      its fields (a cancel names the key in force), so a monitor can recompute
///      the signed digest from the event alone.
///      The assembly blocks that use memory from 0x80 at fixed addresses are not
///      marked memory-safe: they rely on nothing being allocated before them,
///      which holds with the legacy code generator this contract is built with.
contract QuorateVault {
    // ------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------

    /// @notice A FROST signature: the group nonce commitment R in affine
    ///         coordinates and the response scalar z.
    /// @param rx x coordinate of R, below the field prime p.
    /// @param ry y coordinate of R, below the field prime p.
    /// @param z response scalar, below the group order n.
    struct Signature {
        uint256 rx;
        uint256 ry;
        uint256 z;
    }

    /// @notice A withdrawal cap set at construction.
    /// @param token token address, address(0) for the native coin.
    /// @param capacity largest burst in base units; type(uint128).max means no cap.
    /// @param refillPerSecond base units added back to the bucket each second.
    struct CapInit {
        address token;
        uint128 capacity;
        uint128 refillPerSecond;
    }

    /// @dev The packed first storage slot, read once by withdraw.
    struct Meta {
        // 0 while the initial (immutable) key is in force, else the rotated key's prefix.
        uint8 rotatedPrefix;
        // Nonce the next rotateKey / setCap must carry.
        uint64 adminNonce;
        // How many tokens currently have a cap.
        uint32 cappedTokens;
    }

    /// @dev Per-token bucket state; one slot, read by withdraw when caps exist.
    struct Bucket {
        uint128 level;
        uint64 updatedAt;
        bool capped;
    }

    /// @dev Per-token bucket parameters; one slot, read only for a capped token.
    struct Limit {
        uint128 capacity;
        uint128 refillPerSecond;
    }

    /// @dev A cap raise waiting for its delay; eta == 0 means nothing pending
    ///      (a scheduled eta is at least capRaiseDelay > 0). nonce is the admin
    ///      nonce the raise was signed at.
    struct PendingCap {
        uint128 capacity;
        uint128 refillPerSecond;
        uint64 eta;
        uint64 nonce;
    }

    /// @dev A key rotation waiting for its delay; prefix == 0 means nothing
    ///      pending. One slot; the new key's x has a slot of its own. nonce is
    ///      the admin nonce the rotation was signed at.
    struct PendingRotation {
        uint8 prefix;
        uint64 eta;
        uint64 nonce;
    }

    // ------------------------------------------------------------------
    // Constants
    // ------------------------------------------------------------------

    /// @notice Version of the digest formats, bound into every digest.
    uint256 public constant VERSION = 1;

    /// @notice Domain tag of withdrawal digests.
    bytes32 public constant WITHDRAW_TAG = keccak256("QUORATE/evm-vault/withdraw");

    /// @notice Domain tag of key rotation digests.
    bytes32 public constant ROTATE_TAG = keccak256("QUORATE/evm-vault/rotate-key");

    /// @notice Domain tag of cap change digests.
    bytes32 public constant CAP_TAG = keccak256("QUORATE/evm-vault/set-cap");

    /// @dev secp256k1 group order n.
    uint256 private constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    /// @dev secp256k1 field prime p.
    uint256 private constant P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F;

    /// @dev (p + 1) / 4: since p = 3 mod 4, a^((p+1)/4) is a square root of a when one exists.
    uint256 private constant SQRT_EXP = 0x3FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFBFFFFF0C;

    /// @dev Bytes 162..193 of msg_prime: I2OSP(48, 2) || I2OSP(0, 1) || DST, where
    ///      DST = "FROST-secp256k1-SHA256-v1chal" (29 bytes).
    uint256 private constant XMD_TAIL_0 = 0x00300046524F53542D736563703235366B312D5348413235362D76316368616C;

    /// @dev 0x01 || DST || I2OSP(29, 1) || one padding byte (only 31 bytes are hashed).
    uint256 private constant XMD_TAIL_1 = 0x0146524F53542D736563703235366B312D5348413235362D76316368616C1D00;

    /// @dev 0x02 || DST || I2OSP(29, 1) || one padding byte (only 31 bytes are hashed).
    uint256 private constant XMD_TAIL_2 = 0x0246524F53542D736563703235366B312D5348413235362D76316368616C1D00;

    /// @dev Selectors of the custom errors raised from assembly, right-aligned
    ///      (bytes4(keccak256(signature))); the constructor asserts each against
    ///      the compiler's, at no cost (the comparisons fold away).
    uint256 private constant ERR_SCALAR_OUT_OF_RANGE = 0xfd02f350; // ScalarOutOfRange()
    uint256 private constant ERR_POINT_NOT_ON_CURVE = 0xa3d28e13; // PointNotOnCurve()
    uint256 private constant ERR_BAD_SIGNATURE = 0x5cd5d233; // BadSignature()
    uint256 private constant ERR_DEADLINE_PASSED = 0x67680913; // DeadlinePassed(uint64)
    uint256 private constant ERR_WITHDRAWAL_REPLAYED = 0x58463089; // WithdrawalReplayed(bytes32)
    uint256 private constant ERR_BAD_WITHDRAWAL = 0xa1c6fa4d; // BadWithdrawal()
    uint256 private constant ERR_TRANSFER_FAILED = 0x39f1c8d9; // TransferFailed(address)

    /// @dev Topic 0 of Withdrawn: keccak256("Withdrawn(bytes32,address,address,uint256)")
    ///      (asserted in the constructor too).
    uint256 private constant WITHDRAWN_TOPIC = 0xa6786aab7dbbc48b4b0387488b407bd81448030ab207b50bea7dbb5fbc1cd9eb;

    /// @dev Selectors of ERC-20 balanceOf(address) and transfer(address,uint256), right-aligned.
    uint256 private constant BALANCE_OF = 0x70a08231;
    uint256 private constant TRANSFER = 0xa9059cbb;

    /// @dev "No cap" marker for capacity.
    uint128 private constant UNCAPPED = type(uint128).max;

    /// @dev Smallest capRaiseDelay the constructor accepts: one hour.
    uint64 private constant MIN_DELAY = 3600;
    /// @dev A year: longer would leave raises and rotations out of reach (and near 2^64 the
    ///      eta would overflow), so the vault could never change key again.
    uint64 private constant MAX_DELAY = 365 days;

    // ------------------------------------------------------------------
    // Immutables and storage
    // ------------------------------------------------------------------

    /// @dev SEC1 prefix (2 or 3) of the key given at construction.
    uint8 private immutable _initialPrefix;

    /// @dev x coordinate of the key given at construction.
    uint256 private immutable _initialX;

    /// @notice Seconds a cap raise waits before applyCap may apply it, and a
    ///         key rotation before applyRotation may apply it; at least 3600.
    uint64 public immutable capRaiseDelay;

    /// @dev Slot 0: rotated key prefix, admin nonce, number of capped tokens.
    Meta private _meta;

    /// @dev Slot 1: x coordinate of the rotated key (meaningful only when _meta.rotatedPrefix != 0).
    uint256 private _rotatedX;

    /// @notice Whether a withdrawal id has been paid (replay protection).
    mapping(bytes32 id => bool) public used;

    mapping(address token => Bucket) private _buckets;
    mapping(address token => Limit) private _limits;
    mapping(address token => PendingCap) private _pending;

    /// @dev The scheduled key rotation (prefix, eta, nonce), if any. Only
    ///      rotateKey, applyRotation and pendingRotation touch it, never withdraw.
    PendingRotation private _pendingRotation;

    /// @dev x coordinate of the scheduled rotation's key (meaningful only when
    ///      _pendingRotation.prefix != 0); touched by the same functions only.
    uint256 private _pendingRotationX;

    // ------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------

    /// @notice A withdrawal was paid.
    /// @param id the withdrawal id, never payable twice.
    /// @param token token address, address(0) for the native coin.
    /// @param to recipient.
    /// @param amount amount in base units.
    event Withdrawn(bytes32 indexed id, address token, address to, uint256 amount);

    /// @notice A scheduled key rotation was applied (applyRotation): the new key
    ///         is in force and the previous key signs nothing any more.
    /// @param nonce the admin nonce the rotation was signed at (that of its
    ///        KeyRotationScheduled event).
    /// @param prefix SEC1 prefix of the new key.
    /// @param x x coordinate of the new key.
    event KeyRotated(uint64 nonce, uint8 prefix, uint256 x);

    /// @notice A key rotation was signed and scheduled (replacing any earlier
    ///         pending one); applyRotation applies it from eta on. Until then
    ///         the current key stays in force.
    /// @param nonce the admin nonce the rotation was signed at.
    /// @param prefix SEC1 prefix of the new key.
    /// @param x x coordinate of the new key.
    /// @param eta timestamp from which applyRotation applies it.
    event KeyRotationScheduled(uint64 nonce, uint8 prefix, uint256 x, uint64 eta);

    /// @notice A rotation to the current key was signed: any pending key
    ///         rotation is dropped (emitted also when none was pending).
    /// @param nonce the admin nonce the cancellation was signed at.
    /// @param prefix SEC1 prefix of the key in force (the key the cancel names).
    /// @param x x coordinate of the key in force.
    event KeyRotationCancelled(uint64 nonce, uint8 prefix, uint256 x);

    /// @notice A token's cap took effect (capacity type(uint128).max: cap
    ///         removed): a lowering from setCap, or a raise from applyCap.
    ///         Caps set by the constructor emit nothing.
    /// @param token token address, address(0) for the native coin.
    /// @param capacity largest burst in base units.
    /// @param refillPerSecond refill rate in base units per second.
    /// @param nonce the admin nonce the change was signed at (for applyCap,
    ///        that of the raise's CapRaiseScheduled event).
    event CapChanged(address indexed token, uint128 capacity, uint128 refillPerSecond, uint64 nonce);

    /// @notice A cap raise was signed and scheduled (replacing any earlier
    ///         pending raise for the token); applyCap applies it from eta on.
    /// @param token token address, address(0) for the native coin.
    /// @param capacity largest burst in base units (type(uint128).max: remove the cap).
    /// @param refillPerSecond refill rate in base units per second.
    /// @param eta timestamp from which applyCap applies it.
    /// @param nonce the admin nonce the raise was signed at.
    event CapRaiseScheduled(
        address indexed token,
        uint128 capacity,
        uint128 refillPerSecond,
        uint64 eta,
        uint64 nonce
    );

    // ------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------

    /// @notice The group key is not a valid compressed secp256k1 point with x < n.
    error BadKey();
    /// @notice The signature's z is not below the group order n.
    error ScalarOutOfRange();
    /// @notice The signature's R is not a point of secp256k1.
    error PointNotOnCurve();
    /// @notice The signature does not verify under the group key in force (for
    ///         checkSignature: under the given key).
    error BadSignature();
    /// @notice The withdrawal's deadline is in the past.
    /// @param deadline the signed deadline.
    error DeadlinePassed(uint64 deadline);
    /// @notice The withdrawal id was already paid.
    /// @param id the withdrawal id.
    error WithdrawalReplayed(bytes32 id);
    /// @notice Zero amount, zero recipient, the vault itself as recipient, or
    ///         native coin sent along with withdraw.
    error BadWithdrawal();
    /// @notice The amount is above what the token's bucket holds now.
    /// @param token token address, address(0) for the native coin.
    /// @param level what the bucket holds now.
    error CapExceeded(address token, uint128 level);
    /// @notice Paying out failed, or the recipient's balance did not grow by exactly the amount.
    /// @param token token address, address(0) for the native coin.
    error TransferFailed(address token);
    /// @notice The admin nonce is not the expected one.
    /// @param expected the nonce the next admin action must carry.
    error BadNonce(uint64 expected);
    /// @notice applyCap found no pending raise for the token, or applyRotation
    ///         no pending key rotation.
    error NothingPending();
    /// @notice applyCap or applyRotation was called before the pending action's eta.
    /// @param eta timestamp from which the pending action can be applied.
    error TooEarly(uint64 eta);
    /// @notice The constructor's capRaiseDelay_ is below 3600 seconds.
    error BadDelay();

    // ------------------------------------------------------------------
    // Construction and deposits
    // ------------------------------------------------------------------

    /// @notice Creates a vault controlled by the given group key.
    /// @param keyPrefix SEC1 prefix of the group key: 2 (even y) or 3 (odd y).
    /// @param keyX x coordinate of the group key; must be below the group order n.
    /// @param capRaiseDelay_ seconds a cap raise or a key rotation waits before
    ///        it can be applied; from 3600 to 365 days (else BadDelay).
    /// @param caps initial per-token caps; each bucket starts full. They emit no
    ///        CapChanged event (there is no signed nonce to report).
    constructor(uint8 keyPrefix, uint256 keyX, uint64 capRaiseDelay_, CapInit[] memory caps) {
        // The literals the assembly reverts and logs with are the compiler's
        // selectors (the optimizer folds these comparisons away).
        assert(
            ERR_SCALAR_OUT_OF_RANGE == uint32(ScalarOutOfRange.selector) &&
                ERR_POINT_NOT_ON_CURVE == uint32(PointNotOnCurve.selector) &&
                ERR_BAD_SIGNATURE == uint32(BadSignature.selector) &&
                ERR_DEADLINE_PASSED == uint32(DeadlinePassed.selector) &&
                ERR_WITHDRAWAL_REPLAYED == uint32(WithdrawalReplayed.selector) &&
                ERR_BAD_WITHDRAWAL == uint32(BadWithdrawal.selector) &&
                ERR_TRANSFER_FAILED == uint32(TransferFailed.selector) &&
                bytes32(WITHDRAWN_TOPIC) == Withdrawn.selector
        );
        if (!_isValidKey(keyPrefix, keyX)) revert BadKey();
        if (capRaiseDelay_ < MIN_DELAY || capRaiseDelay_ > MAX_DELAY) revert BadDelay();
        _initialPrefix = keyPrefix;
        _initialX = keyX;
        capRaiseDelay = capRaiseDelay_;
        for (uint256 i = 0; i < caps.length; ++i) {
            _setCapNow(caps[i].token, caps[i].capacity, caps[i].refillPerSecond);
        }
    }

    /// @notice Accepts native coin deposits.
    receive() external payable {}

    // ------------------------------------------------------------------
    // Withdrawals
    // ------------------------------------------------------------------

    /// @notice Pays `amount` of `token` to `to` on a signature by the group key
    ///         in force (see groupKey; a scheduled rotation's key does not count
    ///         before applyRotation) over
    ///         withdrawDigestFor(block.chainid, address(this), id, token, to, amount, deadline).
    /// @dev Tokens are paid with a plain transfer call whose return value is
    ///      ignored (some tokens return nothing, Tron's USDT returns false on
    ///      success); instead the recipient's balance must grow by exactly `amount`.
    ///      The checks decide in this order: deadline, replay, recipient and
    ///      amount (and no native coin sent along), signature, cap, payment.
    ///      Payable only so that the compiler adds no separate callvalue check:
    ///      any native coin sent with the call is refused with BadWithdrawal.
    /// @param id withdrawal id; each id is paid at most once.
    /// @param token token address, address(0) for the native coin.
    /// @param to recipient; neither address(0) nor this vault.
    /// @param amount amount in base units, above zero.
    /// @param deadline last timestamp at which the withdrawal may be paid.
    /// @param sig signature by the group key in force.
    function withdraw(
        bytes32 id,
        address token,
        address to,
        uint256 amount,
        uint64 deadline,
        Signature calldata sig
    ) external payable {
        // The packed Meta word (rotated prefix, nonce, capped tokens), read up
        // front: reads change no outcome, the checks below still decide in order.
        uint256 metaWord = _metaWord();
        {
            // The key in force; _rotatedX is read only after a rotation.
            uint256 prefix = _initialPrefix;
            uint256 x = _initialX;
            if (uint8(metaWord) != 0) {
                prefix = uint8(metaWord);
                x = _rotatedX;
            }
            bytes32 tag = WITHDRAW_TAG;
            // Checks, digest and signature in one block. withdraw allocates no
            // memory, so the free memory pointer stays 0x80 and everything from
            // 0x80 on is scratch, used at fixed addresses (as _verify does). The
            // ABI decoder has already refused dirty high bits in token, to and
            // deadline, so they are used unmasked.
            assembly {
                // 1.-3. The slot of used[id] is keccak256(id || slot of used), kept
                // for the write. One branch on the way through; only a refusal
                // sorts out which check failed first: the deadline, a replay, or
                // a zero recipient, the vault as recipient, a zero amount or
                // native coin sent along.
                mstore(0x00, id)
                mstore(0x20, used.slot)
                let usedSlot := keccak256(0x00, 0x40)
                let late := gt(timestamp(), deadline)
                let replayed := sload(usedSlot)
                if or(
                    or(late, replayed),
                    or(or(iszero(to), eq(to, address())), or(iszero(amount), callvalue()))
                ) {
                    if late {
                        mstore(0x00, ERR_DEADLINE_PASSED)
                        mstore(0x20, deadline)
                        revert(0x1c, 0x24)
                    }
                    if replayed {
                        mstore(0x00, ERR_WITHDRAWAL_REPLAYED)
                        mstore(0x20, id)
                        revert(0x1c, 0x24)
                    }
                    mstore(0x00, ERR_BAD_WITHDRAWAL)
                    revert(0x1c, 0x04)
                }

                // 4. The digest exactly as _withdrawDigest computes it for
                //    withdrawDigestFor: keccak256(abi.encode(tag, chainid, this,
                //    VERSION, id, token, to, amount, deadline)), nine words at 0x80.
                mstore(0x80, tag)
                mstore(0xa0, chainid())
                mstore(0xc0, address())
                mstore(0xe0, VERSION)
                mstore(0x100, id)
                mstore(0x120, token)
                mstore(0x140, to)
                mstore(0x160, amount)
                mstore(0x180, deadline)
                let message := keccak256(0x80, 0x120)

                // The signature: this is _verify's code, inlined here because it
                // runs on every withdrawal (a call costs some 90 gas more); keep
                // the two copies identical up to the verdict. Comments on the
                // steps are in _verify.
                let rx := calldataload(sig)
                let ry := calldataload(add(sig, 0x20))
                let z := calldataload(add(sig, 0x40))
                let p := P
                let n := N
                let onCurve := and(
                    and(lt(rx, p), lt(ry, p)),
                    eq(mulmod(ry, ry, p), addmod(mulmod(mulmod(rx, rx, p), rx, p), 7, p))
                )
                mstore(0x80, 0)
                mstore(0xa0, add(2, and(ry, 1)))
                mstore(0xc0, rx)
                mstore(0xe1, x)
                mstore8(0xe0, prefix)
                mstore(0x101, message)
                mstore(0x121, XMD_TAIL_0)
                mstore8(0x141, 0x1d)
                pop(staticcall(gas(), 0x02, 0x7f, 0xc3, 0x80, 0x20))
                let b0 := mload(0x80)
                mstore(0xa0, XMD_TAIL_1)
                pop(staticcall(gas(), 0x02, 0x80, 0x3f, 0xc0, 0x20))
                let b1 := mload(0xc0)
                mstore(0x80, xor(b0, b1))
                mstore(0xa0, XMD_TAIL_2)
                pop(staticcall(gas(), 0x02, 0x80, 0x3f, 0xc0, 0x20))
                let c := addmod(mulmod(b1, shl(128, 1), n), shr(128, mload(0xc0)), n)
                let cx := mulmod(c, x, n)
                mstore(0x00, rx)
                mstore(0x20, ry)
                let expected := and(keccak256(0x00, 0x40), 0xffffffffffffffffffffffffffffffffffffffff)
                mstore(0x80, mulmod(sub(n, z), x, n))
                mstore(0xa0, add(25, prefix))
                mstore(0xc0, x)
                mstore(0xe0, sub(n, cx))
                mstore(0x00, 0)
                pop(staticcall(gas(), 0x01, 0x80, 0x80, 0x00, 0x20))
                // Masked to 160 bits: java-tron's ecrecover answers the 21-byte
                // Tron address (0x41 prefix byte) right-aligned in the word.
                let recovered := and(mload(0x00), 0xffffffffffffffffffffffffffffffffffffffff)
                // The verdict, as in _verify, but reverting at once.
                if iszero(
                    and(
                        and(lt(z, n), onCurve),
                        and(iszero(iszero(cx)), and(iszero(iszero(recovered)), eq(recovered, expected)))
                    )
                ) {
                    let err := ERR_BAD_SIGNATURE
                    if iszero(onCurve) { err := ERR_POINT_NOT_ON_CURVE }
                    if iszero(lt(z, n)) { err := ERR_SCALAR_OUT_OF_RANGE }
                    mstore(0x00, err)
                    revert(0x1c, 0x04)
                }

                // The id is paid from here on: used[id] = true (its slot held 0).
                sstore(usedSlot, 1)
            }
        }
        // 5. The cap, only while some token has one: cappedTokens is bits 72-103
        //    of the Meta word and nothing lies above it.
        if (metaWord >> 72 != 0) _drawFromBucket(token, amount);
        // 6. Payment and event. _drawFromBucket allocates no memory either, so
        //    0x80 on is still scratch.
        assembly {
            switch token
            case 0 {
                // Native coin: a plain value transfer with all gas, no return data copied.
                if iszero(call(gas(), to, amount, 0, 0, 0, 0)) {
                    mstore(0x00, ERR_TRANSFER_FAILED)
                    mstore(0x20, 0)
                    revert(0x1c, 0x24)
                }
            }
            default {
                // Token: calldata starts at 0x9c, the selector (right-aligned in the
                // word at 0x80) followed by `to` at 0xa0 and, for transfer, `amount`
                // at 0xc0; only the selector word changes between the calls.
                // 1. before = token.balanceOf(to), an answer of at least one word;
                // 2. token.transfer(to, amount): only a revert counts as failure, the
                //    returned bool and any return data are ignored (some tokens return
                //    nothing, Tron's USDT returns false on success);
                // 3. afterwards = token.balanceOf(to), again at least one word, and
                //    afterwards - before must be exactly amount (without wrapping).
                // Answers land in scratch word 0x00. Each call's result is bound
                // before returndatasize() is read (Yul evaluates right to left).
                mstore(0x80, BALANCE_OF)
                mstore(0xa0, to)
                let ok := staticcall(gas(), token, 0x9c, 0x24, 0x00, 0x20)
                ok := and(ok, gt(returndatasize(), 0x1f))
                let before := mload(0x00)
                mstore(0x80, TRANSFER)
                mstore(0xc0, amount)
                ok := and(ok, call(gas(), token, 0, 0x9c, 0x44, 0, 0))
                mstore(0x80, BALANCE_OF)
                let success := staticcall(gas(), token, 0x9c, 0x24, 0x00, 0x20)
                ok := and(ok, and(success, gt(returndatasize(), 0x1f)))
                let afterwards := mload(0x00)
                if iszero(and(ok, and(iszero(lt(afterwards, before)), eq(sub(afterwards, before), amount)))) {
                    mstore(0x00, ERR_TRANSFER_FAILED)
                    mstore(0x20, token)
                    revert(0x1c, 0x24)
                }
            }
            // emit Withdrawn(id, token, to, amount): id is the indexed topic, the
            // other three are the data words.
            mstore(0x80, token)
            mstore(0xa0, to)
            mstore(0xc0, amount)
            log2(0x80, 0x60, WITHDRAWN_TOPIC, id)
            // Done: end the call here rather than through Solidity's epilogue.
            stop()
        }
    }

    // ------------------------------------------------------------------
    // Administration (group-signed)
    // ------------------------------------------------------------------

    /// @notice Schedules a replacement of the group key, on a signature by the
    ///         current key over
    ///         rotateDigestFor(block.chainid, address(this), nonce, newPrefix, newX).
    /// @dev The rotation replaces any earlier pending one and can be applied by
    ///      applyRotation after capRaiseDelay seconds; until then the current
    ///      key stays in force for everything, this included. Rotating to the
    ///      current key instead cancels any pending rotation (KeyRotationCancelled,
    ///      also when none is pending). Either way the admin nonce is used up.
    ///      The checks decide in this order: nonce, signature, new key.
    /// @param newPrefix SEC1 prefix of the new key: 2 or 3.
    /// @param newX x coordinate of the new key, below the group order n.
    /// @param nonce must equal adminNonce().
    /// @param sig signature by the current group key.
    function rotateKey(uint8 newPrefix, uint256 newX, uint64 nonce, Signature calldata sig) external {
        // No memory is allocated before _verify (see there).
        uint256 metaWord = _metaWord();
        uint64 expected = _nonceOf(metaWord);
        if (nonce != expected) revert BadNonce(expected);
        (uint256 prefix, uint256 x) = _keyOf(metaWord);
        _requireSignature(prefix, x, _rotateDigest(block.chainid, address(this), nonce, newPrefix, newX), sig);
        if (!_isValidKey(newPrefix, newX)) revert BadKey();
        _meta.adminNonce = nonce + 1;
        if (newPrefix == prefix && newX == x) {
            delete _pendingRotation;
            delete _pendingRotationX;
            emit KeyRotationCancelled(nonce, newPrefix, newX);
        } else {
            uint64 eta = uint64(block.timestamp) + capRaiseDelay;
            _pendingRotation = PendingRotation(newPrefix, eta, nonce);
            _pendingRotationX = newX;
            emit KeyRotationScheduled(nonce, newPrefix, newX, eta);
        }
    }

    /// @notice Puts the pending key rotation into force; anyone may call it from
    ///         its eta on. From then on only the new key signs.
    function applyRotation() external {
        PendingRotation memory r = _pendingRotation;
        if (r.prefix == 0) revert NothingPending();
        if (block.timestamp < r.eta) revert TooEarly(r.eta);
        uint256 x = _pendingRotationX;
        _meta.rotatedPrefix = r.prefix;
        _rotatedX = x;
        delete _pendingRotation;
        delete _pendingRotationX;
        emit KeyRotated(r.nonce, r.prefix, x);
    }

    /// @notice Sets a token's cap, on a signature by the current key over
    ///         capDigestFor(block.chainid, address(this), nonce, token, capacity, refillPerSecond).
    /// @dev A lowering (the token is uncapped and the new capacity is finite, or
    ///      neither capacity nor rate grows) applies at once, cancels any
    ///      pending raise and emits CapChanged. Anything else (including
    ///      removing a cap, and type(uint128).max on an uncapped token) is a
    ///      raise: it replaces any earlier pending raise, emits
    ///      CapRaiseScheduled and can be applied by applyCap after
    ///      capRaiseDelay seconds. Capacity 0 stops the token. A raise
    ///      scheduled before a key rotation took effect can still be applied;
    ///      the key in force cancels it with any lowering (e.g. the current
    ///      values again). The checks decide in this order: nonce, signature.
    /// @param token token address, address(0) for the native coin.
    /// @param capacity largest burst in base units; type(uint128).max removes the cap.
    /// @param refillPerSecond refill rate in base units per second.
    /// @param nonce must equal adminNonce().
    /// @param sig signature by the current group key.
    function setCap(
        address token,
        uint128 capacity,
        uint128 refillPerSecond,
        uint64 nonce,
        Signature calldata sig
    ) external {
        // No memory is allocated before _verify (see there).
        uint256 metaWord = _metaWord();
        uint64 expected = _nonceOf(metaWord);
        if (nonce != expected) revert BadNonce(expected);
        {
            (uint256 prefix, uint256 x) = _keyOf(metaWord);
            _requireSignature(
                prefix,
                x,
                _capDigest(block.chainid, address(this), nonce, token, capacity, refillPerSecond),
                sig
            );
        }
        _meta.adminNonce = nonce + 1;
        if (_isLowering(token, capacity, refillPerSecond)) {
            _setCapNow(token, capacity, refillPerSecond);
            emit CapChanged(token, capacity, refillPerSecond, nonce);
        } else {
            uint64 eta = uint64(block.timestamp) + capRaiseDelay;
            _pending[token] = PendingCap(capacity, refillPerSecond, eta, nonce);
            emit CapRaiseScheduled(token, capacity, refillPerSecond, eta, nonce);
        }
    }

    /// @notice Applies a token's pending cap raise; anyone may call it from its
    ///         eta on. Emits CapChanged with the nonce the raise was signed at.
    /// @param token token address, address(0) for the native coin.
    function applyCap(address token) external {
        PendingCap memory p = _pending[token];
        if (p.eta == 0) revert NothingPending();
        if (block.timestamp < p.eta) revert TooEarly(p.eta);
        _setCapNow(token, p.capacity, p.refillPerSecond);
        emit CapChanged(token, p.capacity, p.refillPerSecond, p.nonce);
    }

    // ------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------

    /// @notice The group key in force (a scheduled rotation is not, until
    ///         applyRotation; see pendingRotation).
    /// @return prefix SEC1 prefix: 2 (even y) or 3 (odd y).
    /// @return x x coordinate.
    function groupKey() external view returns (uint8 prefix, uint256 x) {
        uint256 p;
        (p, x) = _keyOf(_metaWord());
        prefix = uint8(p);
    }

    /// @notice The nonce the next rotateKey or setCap must carry.
    /// @return the admin nonce.
    function adminNonce() external view returns (uint64) {
        return _meta.adminNonce;
    }

    /// @notice How many tokens currently have a cap.
    /// @return the number of capped tokens.
    function cappedTokens() external view returns (uint32) {
        return _meta.cappedTokens;
    }

    /// @notice A token's cap. The bucket held `level` at `updatedAt`; it holds
    ///         min(capacity, level + refillPerSecond * (now - updatedAt)) now.
    /// @param token token address, address(0) for the native coin.
    /// @return capped whether the token has a cap (all other values are 0 when not).
    /// @return capacity largest burst in base units.
    /// @return refillPerSecond refill rate in base units per second.
    /// @return level bucket level at updatedAt.
    /// @return updatedAt timestamp of the last bucket update.
    function capOf(address token)
        external
        view
        returns (bool capped, uint128 capacity, uint128 refillPerSecond, uint128 level, uint64 updatedAt)
    {
        Bucket memory b = _buckets[token];
        Limit memory l = _limits[token];
        return (b.capped, l.capacity, l.refillPerSecond, b.level, b.updatedAt);
    }

    /// @notice What a withdrawal of `token` may take now.
    /// @param token token address, address(0) for the native coin.
    /// @return available bucket level now; type(uint256).max when uncapped.
    function capAvailable(address token) external view returns (uint256 available) {
        Bucket storage b = _buckets[token];
        if (!b.capped) return type(uint256).max;
        Limit storage l = _limits[token];
        return _refreshedLevel(b.level, b.updatedAt, l.capacity, l.refillPerSecond);
    }

    /// @notice A token's pending cap raise.
    /// @param token token address, address(0) for the native coin.
    /// @return pending whether a raise is pending (all other values are 0 when not).
    /// @return capacity the scheduled capacity (type(uint128).max: cap removal).
    /// @return refillPerSecond the scheduled refill rate.
    /// @return eta timestamp from which applyCap applies it.
    /// @return nonce the admin nonce the raise was signed at.
    function pendingCapOf(address token)
        external
        view
        returns (bool pending, uint128 capacity, uint128 refillPerSecond, uint64 eta, uint64 nonce)
    {
        PendingCap memory p = _pending[token];
        return (p.eta != 0, p.capacity, p.refillPerSecond, p.eta, p.nonce);
    }

    /// @notice The pending key rotation, if any.
    /// @return prefix SEC1 prefix of the scheduled key; 0 when nothing is
    ///         pending (all other values are 0 then).
    /// @return x x coordinate of the scheduled key.
    /// @return eta timestamp from which applyRotation applies it.
    /// @return nonce the admin nonce the rotation was signed at.
    function pendingRotation() external view returns (uint8 prefix, uint256 x, uint64 eta, uint64 nonce) {
        PendingRotation memory r = _pendingRotation;
        return (r.prefix, _pendingRotationX, r.eta, r.nonce);
    }

    /// @notice Whether (prefix, x) is a group key this vault accepts: prefix 2
    ///         or 3, 0 < x < n, and x the x coordinate of a secp256k1 point.
    /// @param prefix SEC1 prefix.
    /// @param x x coordinate.
    /// @return whether the key is valid.
    function isValidKey(uint8 prefix, uint256 x) external view returns (bool) {
        return _isValidKey(prefix, x);
    }

    /// @notice Verifies a FROST(secp256k1, SHA-256) signature over a 32-byte
    ///         message under any key, returning false instead of reverting.
    /// @dev Runs _verify, the code rotateKey and setCap use (withdraw has an
    ///      inline copy of it). A key with a prefix other than 2 or 3, or with x
    ///      not in [1, n-1], gives false: ecrecover refuses the v or r it makes.
    /// @param prefix SEC1 prefix of the key: 2 or 3.
    /// @param x x coordinate of the key.
    /// @param message the 32-byte message (a digest).
    /// @param sig the signature.
    /// @return whether the signature is valid.
    function checkSignature(uint8 prefix, uint256 x, bytes32 message, Signature calldata sig)
        external
        view
        returns (bool)
    {
        // No memory is allocated before _verify (see there).
        uint256 err = _verify(prefix, x, message, sig);
        // Return the bool from scratch space rather than through Solidity's encoder.
        assembly ("memory-safe") {
            mstore(0x00, iszero(err))
            return(0x00, 0x20)
        }
    }

    /// @notice The digest a withdrawal signature covers.
    /// @param chainId chain id (block.chainid on the target chain).
    /// @param vault vault address.
    /// @param id withdrawal id.
    /// @param token token address, address(0) for the native coin.
    /// @param to recipient.
    /// @param amount amount in base units.
    /// @param deadline last timestamp at which the withdrawal may be paid.
    /// @return the digest.
    function withdrawDigestFor(
        uint256 chainId,
        address vault,
        bytes32 id,
        address token,
        address to,
        uint256 amount,
        uint64 deadline
    ) external pure returns (bytes32) {
        return _withdrawDigest(chainId, vault, id, token, to, amount, deadline);
    }

    /// @notice The digest a key rotation signature covers.
    /// @param chainId chain id (block.chainid on the target chain).
    /// @param vault vault address.
    /// @param nonce admin nonce.
    /// @param newPrefix SEC1 prefix of the new key.
    /// @param newX x coordinate of the new key.
    /// @return the digest.
    function rotateDigestFor(uint256 chainId, address vault, uint64 nonce, uint8 newPrefix, uint256 newX)
        external
        pure
        returns (bytes32)
    {
        return _rotateDigest(chainId, vault, nonce, newPrefix, newX);
    }

    /// @notice The digest a cap change signature covers.
    /// @param chainId chain id (block.chainid on the target chain).
    /// @param vault vault address.
    /// @param nonce admin nonce.
    /// @param token token address, address(0) for the native coin.
    /// @param capacity largest burst in base units.
    /// @param refillPerSecond refill rate in base units per second.
    /// @return the digest.
    function capDigestFor(
        uint256 chainId,
        address vault,
        uint64 nonce,
        address token,
        uint128 capacity,
        uint128 refillPerSecond
    ) external pure returns (bytes32) {
        return _capDigest(chainId, vault, nonce, token, capacity, refillPerSecond);
    }

    // ------------------------------------------------------------------
    // Digests
    // ------------------------------------------------------------------

    /// @dev withdraw computes the same nine words inline (see there).
    function _withdrawDigest(
        uint256 chainId,
        address vault,
        bytes32 id,
        address token,
        address to,
        uint256 amount,
        uint64 deadline
    ) private pure returns (bytes32 digest) {
        bytes32 tag = WITHDRAW_TAG;
        // keccak256(abi.encode(tag, chainId, vault, VERSION, id, token, to, amount, deadline)),
        // written word by word past the free memory pointer (nine words, 0x120
        // bytes) to keep the legacy code generator's stack shallow. Solidity
        // does not promise clean high bits for address / uint64 values seen
        // from assembly, so they are masked into ABI words here.
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, tag)
            mstore(add(buf, 0x20), chainId)
            mstore(add(buf, 0x40), and(vault, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0x60), VERSION)
            mstore(add(buf, 0x80), id)
            mstore(add(buf, 0xa0), and(token, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0xc0), and(to, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0xe0), amount)
            mstore(add(buf, 0x100), and(deadline, 0xffffffffffffffff))
            digest := keccak256(buf, 0x120)
        }
    }

    function _rotateDigest(uint256 chainId, address vault, uint64 nonce, uint8 newPrefix, uint256 newX)
        private
        pure
        returns (bytes32 digest)
    {
        bytes32 tag = ROTATE_TAG;
        // keccak256(abi.encode(tag, chainId, vault, VERSION, nonce, newPrefix, newX)),
        // seven words written past the free memory pointer without allocating
        // (rotateKey calls _verify afterwards). Narrow values are masked into
        // clean ABI words (see _withdrawDigest).
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, tag)
            mstore(add(buf, 0x20), chainId)
            mstore(add(buf, 0x40), and(vault, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0x60), VERSION)
            mstore(add(buf, 0x80), and(nonce, 0xffffffffffffffff))
            mstore(add(buf, 0xa0), and(newPrefix, 0xff))
            mstore(add(buf, 0xc0), newX)
            digest := keccak256(buf, 0xe0)
        }
    }

    function _capDigest(
        uint256 chainId,
        address vault,
        uint64 nonce,
        address token,
        uint128 capacity,
        uint128 refillPerSecond
    ) private pure returns (bytes32 digest) {
        bytes32 tag = CAP_TAG;
        // keccak256(abi.encode(tag, chainId, vault, VERSION, nonce, token, capacity, refillPerSecond)),
        // written word by word past the free memory pointer (eight words,
        // 0x100 bytes) to keep the stack shallow. Values narrower than 256
        // bits are masked into clean ABI words (see _withdrawDigest).
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, tag)
            mstore(add(buf, 0x20), chainId)
            mstore(add(buf, 0x40), and(vault, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0x60), VERSION)
            mstore(add(buf, 0x80), and(nonce, 0xffffffffffffffff))
            mstore(add(buf, 0xa0), and(token, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0xc0), and(capacity, 0xffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0xe0), and(refillPerSecond, 0xffffffffffffffffffffffffffffffff))
            digest := keccak256(buf, 0x100)
        }
    }

    // ------------------------------------------------------------------
    // Keys and signatures
    // ------------------------------------------------------------------

    /// @dev The packed Meta slot as one word, read with a single SLOAD.
    function _metaWord() private view returns (uint256 word) {
        // Solidity packs struct members from the low-order end of the slot:
        // rotatedPrefix is bits 0-7, adminNonce bits 8-71, cappedTokens bits 72-103.
        assembly ("memory-safe") {
            word := sload(_meta.slot)
        }
    }

    /// @dev adminNonce from the packed Meta word.
    function _nonceOf(uint256 metaWord) private pure returns (uint64) {
        return uint64(metaWord >> 8);
    }

    /// @dev The current key from the packed Meta word; reads _rotatedX only after a rotation.
    function _keyOf(uint256 metaWord) private view returns (uint256 prefix, uint256 x) {
        uint8 rotatedPrefix = uint8(metaWord);
        if (rotatedPrefix == 0) return (_initialPrefix, _initialX);
        return (rotatedPrefix, _rotatedX);
    }

    function _isValidKey(uint8 prefix, uint256 x) private view returns (bool valid) {
        if ((prefix != 2 && prefix != 3) || x == 0 || x >= N) return false;
        uint256 rhs = addmod(mulmod(mulmod(x, x, P), x, P), 7, P);
        uint256 y;
        // y = rhs^((p+1)/4) mod p with the modexp precompile (address 0x05).
        // Input: three 32-byte lengths (base, exponent, modulus), then base,
        // exponent and modulus, written past the free memory pointer. A failed
        // call or a short answer leaves valid false (so the key is refused).
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, 0x20)
            mstore(add(buf, 0x20), 0x20)
            mstore(add(buf, 0x40), 0x20)
            mstore(add(buf, 0x60), rhs)
            mstore(add(buf, 0x80), SQRT_EXP)
            mstore(add(buf, 0xa0), P)
            // Yul evaluates arguments right to left, so the call goes first on its own.
            let success := staticcall(gas(), 0x05, buf, 0xc0, buf, 0x20)
            if and(success, eq(returndatasize(), 0x20)) {
                y := mload(buf)
                valid := 1
            }
        }
        return valid && mulmod(y, y, P) == rhs;
    }

    /// @dev Reverts with _verify's error unless the signature is valid.
    function _requireSignature(uint256 prefix, uint256 x, bytes32 message, Signature calldata sig) private view {
        uint256 err = _verify(prefix, x, message, sig);
        // err is 0 or a custom error's selector, right-aligned: revert with it.
        assembly ("memory-safe") {
            if err {
                mstore(0x00, err)
                revert(0x1c, 0x04)
            }
        }
    }

    /// @dev Verifies a FROST(secp256k1, SHA-256) signature over `message` under
    ///      the key (prefix, x). Returns 0 when it is valid, else the selector of
    ///      ScalarOutOfRange (z >= n), PointNotOnCurve (R not a point of the
    ///      curve with coordinates below p) or BadSignature; never reverts. A
    ///      key with a prefix other than 2 or 3 or with x outside [1, n-1] gives
    ///      BadSignature: ecrecover refuses v outside {27, 28} and r outside
    ///      [1, n-1], so a valid verdict implies a well-formed key.
    ///      Precondition: the caller has allocated no memory, so the free memory
    ///      pointer is 0x80; this writes 0x80-0x141 and the scratch space
    ///      0x00-0x3f at fixed addresses, which keeps address arithmetic out of
    ///      the code. rotateKey, setCap and checkSignature call it before
    ///      allocating anything; withdraw has its own copy of this code.
    function _verify(uint256 prefix, uint256 x, bytes32 message, Signature calldata sig)
        private
        view
        returns (uint256 err)
    {
        // One assembly block that runs straight through and decides only at the
        // end: the challenge, the ecrecover call and the comparison are computed
        // even for a z or an R that fails its range or curve check (harmless
        // garbage in precompile calls), and the first failed check in the order
        // z, R, signature names the error.
        assembly {
            let rx := calldataload(sig)
            let ry := calldataload(add(sig, 0x20))
            let z := calldataload(add(sig, 0x40))
            // p and n on the stack once: otherwise the optimizer may rebuild a
            // constant as PUSH + NOT (6 gas instead of 3) at each of its uses.
            let p := P
            let n := N
            // 1. R = (rx, ry) with coordinates below p and ry^2 = rx^3 + 7 (mod p).
            let onCurve := and(
                and(lt(rx, p), lt(ry, p)),
                eq(mulmod(ry, ry, p), addmod(mulmod(mulmod(rx, rx, p), rx, p), 7, p))
            )

            // 2. c = H2(enc(R) || enc(PK) || m) mod n with RFC 9380
            //    expand_message_xmd(SHA-256, DST = "FROST-secp256k1-SHA256-v1chal",
            //    48 bytes), hashing with the SHA-256 precompile (0x02).
            //    msg_prime (195 bytes) starts at 0x7f, the last byte of the zero
            //    slot (0x60-0x7f, which Solidity keeps zero and this only reads):
            //      [0x7f, 0xbf)    Z_pad: 64 zero bytes (the zero slot's last byte,
            //                      then zeros written at 0x80 and 0xa0)
            //      0xbf            enc(R) prefix: 2 + (ry & 1), the last byte of
            //                      the word written at 0xa0
            //      [0xc0, 0xe0)    R.x
            //      0xe0            enc(PK) prefix
            //      [0xe1, 0x101)   PK.x
            //      [0x101, 0x121)  m
            //      [0x121, 0x141)  I2OSP(48, 2) || I2OSP(0, 1) || DST
            //      0x141           I2OSP(len(DST) = 29, 1)
            //    mstore writes whole words, so fields are written left to right
            //    and each single byte after the word that would cover it.
            //    The calls' success flags are not needed: only running out of gas
            //    makes this precompile fail, and then the ecrecover call below,
            //    which needs far more gas, fails too, which is a refusal.
            mstore(0x80, 0)
            mstore(0xa0, add(2, and(ry, 1)))
            mstore(0xc0, rx)
            mstore(0xe1, x)
            mstore8(0xe0, prefix)
            mstore(0x101, message)
            mstore(0x121, XMD_TAIL_0)
            mstore8(0x141, 0x1d)
            // b0 = H(msg_prime), left at 0x80.
            pop(staticcall(gas(), 0x02, 0x7f, 0xc3, 0x80, 0x20))
            let b0 := mload(0x80)
            // b1 = H(b0 || 0x01 || DST_prime): 63 bytes at 0x80, result at 0xc0.
            mstore(0xa0, XMD_TAIL_1)
            pop(staticcall(gas(), 0x02, 0x80, 0x3f, 0xc0, 0x20))
            let b1 := mload(0xc0)
            // b2 = H((b0 xor b1) || 0x02 || DST_prime), same places.
            mstore(0x80, xor(b0, b1))
            mstore(0xa0, XMD_TAIL_2)
            pop(staticcall(gas(), 0x02, 0x80, 0x3f, 0xc0, 0x20))
            // The 48 uniform bytes b1 || b2[0..16) as an integer: b1 * 2^128 + (b2 >> 128).
            let c := addmod(mulmod(b1, shl(128, 1), n), shr(128, mload(0xc0)), n)

            // 3. ecrecover(h, v, r, s) = address(r^-1 (s*PK - h*G)) with
            //    r = x, v = 27 + (prefix - 2), s = n - c*x, h = -z*x mod n
            //    gives address(z*G - c*PK), which must be address(R) and not 0.
            //    s must lie in [1, n-1]: c*x = 0 would make it n, so it is refused.
            let cx := mulmod(c, x, n)
            // address(R): the low 160 bits of keccak256(rx || ry), in scratch space.
            mstore(0x00, rx)
            mstore(0x20, ry)
            let expected := and(keccak256(0x00, 0x40), 0xffffffffffffffffffffffffffffffffffffffff)
            // h = (n - z) * x mod n = -z*x mod n (for z < n, n - z is in [1, n]).
            mstore(0x80, mulmod(sub(n, z), x, n))
            mstore(0xa0, add(25, prefix))
            mstore(0xc0, x)
            mstore(0xe0, sub(n, cx))
            // The precompile (0x01) answers 32 bytes, or nothing when recovery
            // fails or it runs out of gas; the cleared output word then stays 0.
            // Only the low 160 bits are the address: java-tron's precompile
            // returns the 21-byte Tron address, prefix byte 0x41 included,
            // right-aligned in the word, so the word is masked before the
            // comparison (on EVM chains the high bits are zero anyway).
            mstore(0x00, 0)
            pop(staticcall(gas(), 0x01, 0x80, 0x80, 0x00, 0x20))
            let recovered := and(mload(0x00), 0xffffffffffffffffffffffffffffffffffffffff)

            // 4. The verdict: z < n, R on the curve, c*x != 0, the recovered
            //    address != 0 and == address(R); else the first failed check's error.
            if iszero(
                and(
                    and(lt(z, n), onCurve),
                    and(iszero(iszero(cx)), and(iszero(iszero(recovered)), eq(recovered, expected)))
                )
            ) {
                err := ERR_BAD_SIGNATURE
                if iszero(onCurve) { err := ERR_POINT_NOT_ON_CURVE }
                if iszero(lt(z, n)) { err := ERR_SCALAR_OUT_OF_RANGE }
            }
        }
    }

    // ------------------------------------------------------------------
    // Caps
    // ------------------------------------------------------------------

    /// @dev min(capacity, level + refillPerSecond * (now - updatedAt)) for a
    ///      bucket's stored values: level and refillPerSecond are below 2^128 and
    ///      updatedAt is an earlier block.timestamp (stored as uint64), so
    ///      nothing here can underflow or overflow and the arithmetic is unchecked.
    function _refreshedLevel(uint256 level, uint256 updatedAt, uint256 capacity, uint256 refillPerSecond)
        private
        view
        returns (uint256 refreshed)
    {
        unchecked {
            refreshed = level + refillPerSecond * (block.timestamp - updatedAt);
        }
        if (refreshed > capacity) refreshed = capacity;
    }

    /// @dev Takes `amount` from a capped token's bucket: one read of the Bucket
    ///      slot (and of the Limit slot when capped) and one write; allocates no
    ///      memory (withdraw builds its payment calldata at 0x80 afterwards).
    function _drawFromBucket(address token, uint256 amount) private {
        Bucket storage b = _buckets[token];
        uint256 bucket;
        // Solidity packs struct members from the low-order end of the slot:
        // level is bits 0-127, updatedAt bits 128-191, capped bits 192-199.
        assembly ("memory-safe") {
            bucket := sload(b.slot)
        }
        if (bucket >> 192 == 0) return;
        Limit storage l = _limits[token];
        uint256 limit;
        // capacity is bits 0-127, refillPerSecond bits 128-255.
        assembly ("memory-safe") {
            limit := sload(l.slot)
        }
        uint256 level = _refreshedLevel(uint128(bucket), uint64(bucket >> 128), uint128(limit), limit >> 128);
        if (amount > level) revert CapExceeded(token, uint128(level));
        // Bucket(level - amount, uint64(block.timestamp), true) in one write
        // (level - amount is below 2^128: level is at most the capacity).
        assembly ("memory-safe") {
            sstore(b.slot, or(sub(level, amount), or(shl(128, and(timestamp(), 0xffffffffffffffff)), shl(192, 1))))
        }
    }

    function _isLowering(address token, uint128 capacity, uint128 refillPerSecond) private view returns (bool) {
        if (!_buckets[token].capped) return capacity != UNCAPPED;
        Limit storage l = _limits[token];
        return capacity <= l.capacity && refillPerSecond <= l.refillPerSecond;
    }

    /// @dev Puts a cap (or, with capacity UNCAPPED, its removal) into force at
    ///      once, keeping _meta.cappedTokens exact and dropping any pending raise.
    ///      Emits nothing: the callers that act on a signature emit CapChanged
    ///      with its nonce, the constructor emits nothing.
    function _setCapNow(address token, uint128 capacity, uint128 refillPerSecond) private {
        Bucket storage b = _buckets[token];
        if (capacity == UNCAPPED) {
            if (b.capped) {
                _meta.cappedTokens -= 1;
                delete _buckets[token];
                delete _limits[token];
            }
        } else {
            uint256 level = capacity;
            if (b.capped) {
                Limit storage l = _limits[token];
                uint256 current = _refreshedLevel(b.level, b.updatedAt, l.capacity, l.refillPerSecond);
                if (current < level) level = current;
            } else {
                _meta.cappedTokens += 1;
            }
            _buckets[token] = Bucket(uint128(level), uint64(block.timestamp), true);
            _limits[token] = Limit(capacity, refillPerSecond);
        }
        delete _pending[token];
    }
}
