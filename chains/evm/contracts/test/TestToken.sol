// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TokenBase} from "./TokenBase.sol";

/// @title Test ERC-20 token
/// @notice A plain ERC-20 whose transfer functions return true, with an
///         unrestricted mint. For tests and the devnet only.
contract TestToken is TokenBase {
    /// @notice Creates the token with no supply.
    /// @param name_ token name.
    /// @param symbol_ token symbol.
    /// @param decimals_ number of decimals.
    constructor(string memory name_, string memory symbol_, uint8 decimals_)
        TokenBase(name_, symbol_, decimals_)
    {}

    /// @notice Moves tokens from the caller.
    /// @param to recipient.
    /// @param amount amount.
    /// @return always true (failures revert).
    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    /// @notice Moves tokens using an allowance.
    /// @param from owner.
    /// @param to recipient.
    /// @param amount amount.
    /// @return always true (failures revert).
    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        _spend(from, amount);
        _move(from, to, amount);
        return true;
    }

    /// @notice Sets the caller's allowance for a spender.
    /// @param spender spender.
    /// @param amount new allowance.
    /// @return always true.
    function approve(address spender, uint256 amount) external returns (bool) {
        _approve(spender, amount);
        return true;
    }
}
