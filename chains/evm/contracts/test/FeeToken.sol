// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TokenBase} from "./TokenBase.sol";

/// @title Test fee-on-transfer token
/// @notice An ERC-20 that burns 1% of every transfer, rounded up so that any non-zero transfer
///         pays a fee: the recipient gets less than the amount. The vault must refuse to pay
///         with it. For tests only.
contract FeeToken is TokenBase {
    /// @notice Creates the token with no supply.
    /// @param name_ token name.
    /// @param symbol_ token symbol.
    /// @param decimals_ number of decimals.
    constructor(string memory name_, string memory symbol_, uint8 decimals_)
        TokenBase(name_, symbol_, decimals_)
    {}

    /// @notice Moves tokens from the caller; 1% (rounded up) is burnt, the recipient gets the
    ///         rest.
    /// @param to recipient.
    /// @param amount amount taken from the caller.
    /// @return always true (failures revert).
    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    /// @dev Burns the fee and delivers the rest.
    function _move(address from, address to, uint256 amount) internal override {
        uint256 fee = amount / 100;
        if (amount % 100 != 0) fee += 1;
        balanceOf[from] -= amount;
        balanceOf[to] += amount - fee;
        totalSupply -= fee;
        emit Transfer(from, to, amount - fee);
        if (fee != 0) emit Transfer(from, address(0), fee);
    }
}
