// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Test token base
/// @notice Balances, allowances, events and an unrestricted mint, shared by the test tokens,
///         which differ only in what `transfer` returns and what it delivers. For tests only.
abstract contract TokenBase {
    /// @notice Token name.
    string public name;
    /// @notice Token symbol.
    string public symbol;
    /// @notice Number of decimals of the base unit.
    uint8 public immutable decimals;
    /// @notice Total amount minted (less any burnt).
    uint256 public totalSupply;
    /// @notice Balance of each holder.
    mapping(address holder => uint256) public balanceOf;
    /// @notice Amount a spender may move from an owner.
    mapping(address owner => mapping(address spender => uint256)) public allowance;

    /// @notice Tokens moved (from address(0) when minted, to address(0) when burnt).
    /// @param from sender.
    /// @param to recipient.
    /// @param value amount.
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// @notice An allowance was set.
    /// @param owner owner of the tokens.
    /// @param spender spender.
    /// @param value new allowance.
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice Creates the token with no supply.
    /// @param name_ token name.
    /// @param symbol_ token symbol.
    /// @param decimals_ number of decimals.
    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
    }

    /// @notice Mints tokens to an address; anyone may call it.
    /// @param to recipient.
    /// @param amount amount.
    function mint(address to, uint256 amount) external {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    /// @dev Takes `amount` from `from`'s allowance for the caller.
    function _spend(address from, uint256 amount) internal {
        allowance[from][msg.sender] -= amount;
    }

    /// @dev Sets the caller's allowance for `spender`.
    function _approve(address spender, uint256 amount) internal {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
    }

    /// @dev Moves `amount` from `from` to `to`; a token may deliver less (see FeeToken).
    function _move(address from, address to, uint256 amount) internal virtual {
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}
